"""One turn = one transaction, on SQLite and PostgreSQL, with the tests' small flow set."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import select

from bot.announcements import enrolment, subscriptions
from bot.channels.simulator import take
from bot.service import Hamroh, Inbound, count_rows
from bot.store import (
    METADATA,
    Announcement,
    AnnouncementRecipient,
    Case,
    Contact,
    ConversationState,
    CourseRow,
    Delivery,
    Enrolment,
    OutboxMessage,
    RequestLogEntry,
    Subscription,
)
from bot.store.crypto import AddressError
from bot.store.db import transaction
from tests.conftest import Clock

PHONE = "+992 90 123 45 67"


async def say(
    hamroh: Hamroh,
    text: str = "",
    *,
    address: str = PHONE,
    channel: str = "sms",
    provider_id: str | None = None,
    button: str | None = None,
) -> list[dict[str, Any]]:
    outcome = await hamroh.handle(
        Inbound(
            channel,
            address,
            text=text,
            button=button,  # type: ignore[arg-type]
            provider_id=provider_id,
        )
    )
    return await take(hamroh, outcome.outbox_ids, hamroh.clock())


async def rows(hamroh: Hamroh, table: Any) -> list[Any]:
    async with transaction(hamroh.engine) as db:
        return list((await db.exec(select(table))).all())


async def test_a_conversation_is_saved_between_turns_and_replies_wait_in_the_outbox(
    small_hamroh: Hamroh,
) -> None:
    hello = await say(small_hamroh, "hi", provider_id="m1")
    assert "Hello. Choose your language." in hello[0]["text"]
    assert (await say(small_hamroh, "1", provider_id="m2"))[0]["text"].startswith("How can I help?\n1 Legal")
    reply = await say(small_hamroh, "алимент", provider_id="m3")
    assert reply[0]["text"] == "A father must pay for his children.\n1 More\n0 Menu"
    outbox = await rows(small_hamroh, OutboxMessage)
    assert [m.status for m in outbox] == ["sent"] * 3
    assert all(b"A father" not in m.body and b"992" not in m.address for m in outbox)
    (entry,) = await rows(small_hamroh, RequestLogEntry)
    assert (entry.topic, entry.channel, entry.lang, entry.pseudonym) == (
        "legal.alimony",
        "sms",
        "tg",
        "pseudonym0001",
    )
    assert entry.hour.minute == 0


async def test_the_same_delivery_twice_is_handled_once(small_hamroh: Hamroh) -> None:
    await say(small_hamroh, "hi", provider_id="SM1")
    assert await say(small_hamroh, "hi", provider_id="SM1") == []
    results = await asyncio.gather(
        *(small_hamroh.handle(Inbound("sms", PHONE, "1", provider_id="SM2")) for _ in range(5))
    )
    assert sorted(r.duplicate for r in results) == [False, True, True, True, True]
    async with transaction(small_hamroh.engine) as db:
        assert await count_rows(db, Delivery) == 2
        assert await count_rows(db, OutboxMessage) == 2


async def test_a_failed_turn_leaves_nothing_so_the_retry_is_handled(
    small_hamroh: Hamroh, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(db: object) -> tuple[()]:
        raise RuntimeError("database went away")

    monkeypatch.setattr(small_hamroh.courses, "get", broken)
    with pytest.raises(RuntimeError):
        await small_hamroh.handle(Inbound("sms", PHONE, "hi", provider_id="SM9"))
    async with transaction(small_hamroh.engine) as db:
        for table in (Contact, Delivery, OutboxMessage, ConversationState):
            assert await count_rows(db, table) == 0
    monkeypatch.undo()
    assert await say(small_hamroh, "hi", provider_id="SM9")


async def test_two_women_are_told_apart_and_addresses_are_normalised(small_hamroh: Hamroh) -> None:
    await say(small_hamroh, "hi", address="+992901234567")
    await say(small_hamroh, "2", address="00992 90 123-45-67")  # the same woman, typed another way
    await say(small_hamroh, "hi", address="tg:42", channel="telegram")
    contacts = await rows(small_hamroh, Contact)
    assert len(contacts) == 2
    assert {c.lang for c in contacts} == {"ru", None}
    with pytest.raises(AddressError):
        await small_hamroh.handle(Inbound("sms", "<script>", "hi"))


async def test_an_escalation_opens_a_case(small_hamroh: Hamroh) -> None:
    await say(small_hamroh, "1")
    await say(small_hamroh, "3")
    reply = await say(small_hamroh, "4")
    assert reply[0]["text"].startswith("A counsellor will write to you.")
    (case,) = await rows(small_hamroh, Case)
    assert (case.queue, case.category, case.priority, case.status) == (
        "general",
        "asked",
        "normal",
        "waiting",
    )
    assert [e.topic for e in await rows(small_hamroh, RequestLogEntry)] == ["escalation.general"]


async def test_stop_means_nothing_more_is_sent_until_start(small_hamroh: Hamroh) -> None:
    await say(small_hamroh, "1")
    assert (await say(small_hamroh, "СТОП"))[0]["text"].startswith("You will get no more messages")
    assert await say(small_hamroh, "hello?") == []
    (contact,) = await rows(small_hamroh, Contact)
    assert contact.opted_out
    assert (await say(small_hamroh, "start"))[0]["text"].startswith("Welcome back.")


async def test_clear_chat_is_queued_with_her_messages_of_the_last_two_days(
    small_hamroh: Hamroh, clock: Clock
) -> None:
    async def tap(button: str | None, message_id: int) -> None:
        inbound = Inbound(
            "telegram", "7", "1" if button is None else "", button=button, message_id=message_id
        )
        await small_hamroh.handle(inbound)

    await tap(None, 10)
    clock.advance(hours=49)
    await tap("main.menu:settings", 11)
    await tap("main.settings:clear_chat", 12)  # "Delete our messages from this chat?"
    await tap("main.clear_chat:clear", 13)
    commands = [m for m in await rows(small_hamroh, OutboxMessage) if m.kind == "command"]
    bodies = [json.loads(small_hamroh.vault.open(m.body)) for m in commands]
    assert bodies == [{"op": "clear_chat", "message_ids": [11, 12, 13]}]  # 10 is too old for Telegram


async def test_the_pseudonym_changes_each_month(small_hamroh: Hamroh, clock: Clock) -> None:
    await say(small_hamroh, "1")
    await say(small_hamroh, "алимент")
    clock.advance(days=5)  # 3 December
    await say(small_hamroh, "алимент")
    first, second = await rows(small_hamroh, RequestLogEntry)
    assert first.pseudonym != second.pseudonym


async def test_erase_leaves_nothing_of_her(small_hamroh: Hamroh, clock: Clock) -> None:
    await say(small_hamroh, "1", provider_id="a1")
    await say(small_hamroh, "1", address="+992935550000")  # another woman, who stays
    await say(small_hamroh, "3", provider_id="a2")
    await say(small_hamroh, "4", provider_id="a3")  # a case
    her_id = await news_course_and_announcement(small_hamroh, clock)
    await say(small_hamroh, "удалить мои данные", provider_id="a4")
    outcome = await small_hamroh.handle(Inbound("sms", PHONE, "1", provider_id="a5"))
    async with transaction(small_hamroh.engine) as db:
        for table in METADATA.sorted_tables:  # every table that can point to a woman, today's and later ones
            if "contact_id" in table.c:
                query = select(sa.func.count()).select_from(table).where(table.c.contact_id == her_id)
                assert (await db.exec(query)).one() == 0, f"{table.name} still points to her"
        assert await count_rows(db, Subscription) == 0
        assert await count_rows(db, Enrolment) == 0
        (recipient,) = (await db.exec(select(AnnouncementRecipient))).all()
        assert (recipient.contact_id, recipient.outcome) == (None, "delivered")  # still counted, of nobody
        contacts = (await db.exec(select(Contact))).all()
        assert [small_hamroh.vault.open(c.address) for c in contacts] == ["+992935550000"]
        (case,) = (await db.exec(select(Case))).all()  # her case stays, closed and empty, for the staff
        assert (case.contact_id, case.outcome) == (None, "erased")
        assert await count_rows(db, ConversationState) == 1
        leftover = (await db.exec(select(OutboxMessage).where(OutboxMessage.contact_id == None))).all()  # noqa: E711
        assert [m.ephemeral for m in leftover] == [True]  # the confirmation, deleted once sent
        deliveries = (await db.exec(select(Delivery))).all()
        assert all(d.contact_id is None for d in deliveries if d.provider_id.startswith("a"))
    (confirmation,) = await take(small_hamroh, outcome.outbox_ids, small_hamroh.clock())
    assert confirmation["text"].startswith("Everything about you has been deleted.")
    async with transaction(small_hamroh.engine) as db:
        assert await count_rows(db, OutboxMessage) == 1  # the other woman's reply only
        fingerprint = small_hamroh.vault.fingerprint("+992901234567")
        assert (await db.exec(select(Contact).where(Contact.fingerprint == fingerprint))).first() is None
        logged = {entry.pseudonym for entry in (await db.exec(select(RequestLogEntry))).all()}
        kept = {contact.pseudonym for contact in (await db.exec(select(Contact))).all()}
    assert logged == {"pseudonym0001"}  # the anonymous count of her escalation stays...
    assert not logged & kept  # ...but no longer points to anyone


async def news_course_and_announcement(hamroh: Hamroh, clock: Clock) -> int:
    """Her news topics, a place on a course and an announcement she received; her contact id."""
    async with transaction(hamroh.engine) as db:
        fingerprint = hamroh.vault.fingerprint("+992901234567")
        contact = (await db.exec(select(Contact).where(Contact.fingerprint == fingerprint))).one()
        assert contact.id is not None
        await subscriptions.set_topics(db, contact, ["training", "health"], clock())
        course = CourseRow(title_tg="Дӯзандагӣ", title_ru="Швейное дело", capacity=1, created_at=clock())
        sent = Announcement(text_tg="Салом", text_ru="Привет", audience="{}", created_at=clock())
        db.add_all([course, sent])
        await db.flush()
        assert course.id is not None
        assert sent.id is not None
        placed = await enrolment.enrol(
            db, hamroh.vault, course_id=course.id, contact_id=contact.id, details={}, now=clock()
        )
        assert placed == "enrolled"
        db.add(
            AnnouncementRecipient(
                announcement_id=sent.id, contact_id=contact.id, channel="sms", lang="tg",
                outcome="delivered", updated_at=clock(),
            )
        )  # fmt: skip
        return contact.id


async def test_two_first_messages_at_once_make_one_contact(small_hamroh: Hamroh) -> None:
    results = await asyncio.gather(*(small_hamroh.handle(Inbound("sms", PHONE, "hi")) for _ in range(4)))
    assert all(not r.duplicate for r in results)
    async with transaction(small_hamroh.engine) as db:
        assert await count_rows(db, Contact) == 1
        assert await count_rows(db, OutboxMessage) == 4
