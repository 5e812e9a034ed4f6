"""'Delete my data' before a language is chosen, and the confirmation that leaves nothing behind."""

from __future__ import annotations

from sqlmodel import select

from bot.service import Hamroh
from bot.store import Contact
from bot.store.db import transaction
from tests.test_conversations import Woman, number_of

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
