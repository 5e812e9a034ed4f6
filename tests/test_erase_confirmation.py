"""'Delete my data' before a language is chosen, and the confirmation that leaves nothing behind."""

from __future__ import annotations

from sqlmodel import select

from bot.receipts import delivery_report
from bot.senders import Failed
from bot.service import Hamroh
from bot.store import Contact
from bot.store.db import transaction
from tests.conftest import Clock
from tests.test_conversations import Woman, number_of
from tests.test_retention import FakeTwilio, her_sid, outbox_rows, run_sweep, send_all, she_writes, sid

QUESTION = "Delete everything Hamroh knows about you? This cannot be undone."
DELETED = "Your data has been deleted."


def in_both(her: Woman, msgid: str) -> list[str]:
    return [her.hamroh.flows.text(lang, msgid) for lang in ("tg", "ru")]


async def contacts(hamroh: Hamroh) -> list[Contact]:
    async with transaction(hamroh.engine) as db:
        return list((await db.exec(select(Contact))).all())


async def test_she_erases_by_sms_before_choosing_a_language(hamroh: Hamroh) -> None:
    her = Woman(hamroh, "sms", "+992927100001")
    welcome = await her.send("Салом")
    assert in_both(her, "Hello! I am Hamroh, help for women. Language:")[0] in welcome
    assert len(await contacts(hamroh)) == 1  # she exists from her first message

    question = await her.send("маълумоти маро нест кунед")
    tajik, russian = in_both(her, QUESTION)
    assert question.startswith(f"{tajik}\n{russian}")
    yes = " / ".join(in_both(her, "Yes, delete"))
    done = await her.send(number_of(question, yes))
    assert done == "\n".join(in_both(her, DELETED))
    assert await contacts(hamroh) == []


async def test_no_on_telegram_before_a_language_keeps_her_and_shows_the_welcome(hamroh: Hamroh) -> None:
    her = Woman(hamroh, "telegram", "tg:5100001")
    await her.send("/start")
    question = await her.send("удалить мои данные")
    assert question.startswith("\n".join(in_both(her, QUESTION)))
    assert her.buttons() == [" / ".join(in_both(her, label)) for label in ("Yes, delete", "No")]
    rows = her.received[-1]["reply_markup"]["inline_keyboard"]
    welcome = await her.send(button=rows[1][0]["callback_data"])
    assert in_both(her, "Hello! I am Hamroh, help for women. Language:")[1] in welcome
    assert len(await contacts(hamroh)) == 1
    menu = await her.send("1")  # after "No", a number chooses a language again
    assert menu.startswith(her.t("How can I help you?"))


async def test_two_on_the_question_means_no_not_russian(hamroh: Hamroh) -> None:
    her = Woman(hamroh, "sms", "+992927100002")
    await her.send("Салом")
    await her.send("удалить")
    welcome = await her.send("2")
    assert in_both(her, "Hello! I am Hamroh, help for women. Language:")[0] in welcome
    [contact] = await contacts(hamroh)
    assert contact.lang is None


async def erase_by_sms(hamroh: Hamroh, address: str) -> None:
    for n, text in enumerate(("Салом", "1", "нест кунед", "1"), start=1):
        await she_writes(hamroh, address, text, n)


async def test_a_delivered_confirmation_is_deleted_at_twilio_when_the_report_comes(
    hamroh: Hamroh, clock: Clock
) -> None:
    twilio = FakeTwilio()
    await erase_by_sms(hamroh, "+992927300001")
    await send_all(hamroh, clock, twilio)
    assert twilio.texts[-1].startswith(hamroh.flows.text("tg", DELETED))
    confirmation = sid(len(twilio.texts))
    assert confirmation not in twilio.deleted  # her own SMS go at once; ours is not delivered yet
    [kept] = await outbox_rows(hamroh)
    assert (kept.provider_id, kept.contact_id, kept.body, kept.address) == (confirmation, None, b"", b"")

    assert await delivery_report(hamroh, provider_id=confirmation, status="sent", error_code=None)
    assert len(await outbox_rows(hamroh)) == 1  # "sent" is not the last word
    assert await delivery_report(hamroh, provider_id=confirmation, status="delivered", error_code=None)
    await send_all(hamroh, clock, twilio)
    assert confirmation in twilio.deleted
    assert sorted(twilio.deleted) == sorted({*twilio.deleted})  # each once
    assert await outbox_rows(hamroh) == []
    assert await contacts(hamroh) == []


async def test_without_a_delivery_report_the_confirmation_goes_at_twilio_after_ten_minutes(
    hamroh: Hamroh, clock: Clock
) -> None:
    twilio = FakeTwilio()
    await erase_by_sms(hamroh, "+992927300002")
    await send_all(hamroh, clock, twilio)
    confirmation = sid(len(twilio.texts))
    assert not await run_sweep(hamroh) or confirmation not in twilio.deleted
    clock.advance(minutes=10, seconds=1)
    assert (await run_sweep(hamroh)).confirmations_deleted == 1
    await send_all(hamroh, clock, twilio)
    assert confirmation in twilio.deleted
    assert await outbox_rows(hamroh) == []


async def test_a_confirmation_that_cannot_be_delivered_leaves_nothing(hamroh: Hamroh, clock: Clock) -> None:
    twilio = FakeTwilio()
    await she_writes(hamroh, "+992927300003", "Салом", 1)
    await she_writes(hamroh, "+992927300003", "удалить", 2)
    await send_all(hamroh, clock, twilio)
    twilio.answers = [Failed("twilio 400 error 21211")]
    await she_writes(hamroh, "+992927300003", "1", 3)
    await send_all(hamroh, clock, twilio)
    assert await outbox_rows(hamroh) == []  # not a failed row holding "your data is deleted" and her number
    assert sorted(twilio.deleted) == sorted([sid(1), sid(2), *(her_sid(n) for n in (1, 2, 3))])
