"""Keep less, for less time: what retention leaves of her messages, ids, menus and silent contacts.

Her SMS go through the real service and dispatcher; Twilio is a recording sender that gives SIDs and
records the SIDs it is asked to delete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlmodel import col, select

from bot import retention
from bot.config import Settings
from bot.retention import Policy, sweep
from bot.senders import Outgoing, SendResult, Sent
from bot.service import Hamroh, Inbound
from bot.store import Case, Contact, ConversationState, CourseRow, Delivery, Enrolment, OutboxMessage
from bot.store.db import transaction
from tests.conftest import Clock
from tests.test_dispatcher import make, run_until_settled

POLICY = Policy()  # the defaults: bodies at once, rows and ids after 3 days, history after a day, a year


@dataclass
class FakeTwilio:
    """Stands for Twilio: each SMS gets a SID; delete_sms commands record the SIDs they delete."""

    channel: str = "sms"
    credential: str = "AC" + "0" * 32
    texts: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    answers: list[SendResult] = field(default_factory=list)

    def cost(self, message: Outgoing) -> int:
        return 1

    async def send(self, message: Outgoing) -> SendResult:
        if message.body.get("op") == "delete_sms":
            self.deleted.extend(message.body["sids"])
            return Sent()
        self.texts.append(str(message.body["text"]))
        if self.answers:
            return self.answers.pop(0)
        return Sent((sid(len(self.texts)),))

    async def close(self) -> None:
        return None


def sid(n: int, prefix: str = "SM") -> str:
    """A Twilio message SID: ours (SM0..1), or hers when the test says so."""
    return f"{prefix}{n:032x}"


def her_sid(n: int) -> str:
    return f"SM{'f' * 24}{n:08x}"


async def she_writes(hamroh: Hamroh, address: str, text: str, n: int) -> None:
    await hamroh.handle(Inbound("sms", address, text=text, provider_id=her_sid(n)))


async def send_all(hamroh: Hamroh, clock: Clock, twilio: FakeTwilio) -> None:
    await run_until_settled(make(hamroh.engine, hamroh.vault, clock, twilio), hamroh.engine)  # type: ignore[arg-type]


async def outbox_rows(hamroh: Hamroh) -> list[OutboxMessage]:
    async with transaction(hamroh.engine) as db:
        return list((await db.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all())


async def run_sweep(hamroh: Hamroh, policy: Policy = POLICY) -> retention.Done:
    async with transaction(hamroh.engine) as db:
        return await sweep(db, hamroh.vault, policy, hamroh.clock())


async def test_her_sms_lose_their_words_at_once_and_go_at_twilio_before_their_ids_go(
    hamroh: Hamroh, clock: Clock
) -> None:
    twilio = FakeTwilio()
    await she_writes(hamroh, "+992927200001", "Салом", 1)
    await she_writes(hamroh, "+992927200001", "1", 2)
    await send_all(hamroh, clock, twilio)
    assert len(twilio.texts) == 2  # the welcome and the menu

    done = await run_sweep(hamroh)
    assert done.bodies_cleared == 2
    assert [(r.status, r.body, r.address) for r in await outbox_rows(hamroh)] == [("sent", b"", b"")] * 2

    clock.advance(days=2)
    assert not await run_sweep(hamroh)  # nothing else is due yet: the ids still find her SMS

    clock.advance(days=1, seconds=1)
    done = await run_sweep(hamroh)
    assert (done.outbox_deleted, done.deliveries_deleted, done.sms_to_delete) == (2, 2, 4)
    await send_all(hamroh, clock, twilio)
    assert sorted(twilio.deleted) == sorted([sid(1), sid(2), her_sid(1), her_sid(2)])
    assert await outbox_rows(hamroh) == []  # the delete commands went once done
    async with transaction(hamroh.engine) as db:
        assert (await db.exec(select(Delivery))).all() == []
        assert len((await db.exec(select(Contact))).all()) == 1  # she stays: she wrote three days ago


async def test_the_way_back_through_the_menus_goes_after_a_day_and_is_not_her_activity(
    hamroh: Hamroh, clock: Clock
) -> None:
    await she_writes(hamroh, "+992927200002", "Салом", 1)
    await she_writes(hamroh, "+992927200002", "1", 2)
    await she_writes(hamroh, "+992927200002", "1", 3)  # "Your rights": the menu is now in her history
    async with transaction(hamroh.engine) as db:
        [before] = (await db.exec(select(ConversationState))).all()
    assert json.loads(before.state)["history"] == ["main.menu"]

    clock.advance(hours=23)
    assert (await run_sweep(hamroh)).histories_trimmed == 0
    clock.advance(hours=1)
    assert (await run_sweep(hamroh)).histories_trimmed == 1
    assert (await run_sweep(hamroh)).histories_trimmed == 0
    async with transaction(hamroh.engine) as db:
        [after] = (await db.exec(select(ConversationState))).all()
    state = json.loads(after.state)
    assert state["history"] == []
    assert state["node"] == json.loads(before.state)["node"]
    assert after.updated_at == before.updated_at


async def test_a_woman_silent_for_a_year_is_erased_without_a_word_unless_a_case_or_subscription_keeps_her(
    hamroh: Hamroh, clock: Clock
) -> None:
    twilio = FakeTwilio()
    for n, address in enumerate(("+992927200003", "+992927200004", "+992927200005"), start=1):
        await she_writes(hamroh, address, "Салом", n)
    async with transaction(hamroh.engine) as db:
        first, subscribed, in_case = (await db.exec(select(Contact).order_by(col(Contact.id)))).all()
        subscribed.subscribed = True
        db.add(subscribed)
        assert in_case.id is not None
        db.add(Case(contact_id=in_case.id, channel="sms", queue="general", category="asked",
                    opened_at=clock(), waiting_since=clock()))  # fmt: skip
    await send_all(hamroh, clock, twilio)
    clock.advance(days=364)
    await she_writes(hamroh, "+992927200006", "Салом", 4)  # someone new, today
    sent_before = len(twilio.texts)

    assert (await run_sweep(hamroh)).contacts_erased == 0
    clock.advance(days=1, seconds=1)
    assert (await run_sweep(hamroh)).contacts_erased == 1
    await send_all(hamroh, clock, twilio)
    assert len(twilio.texts) == sent_before + 1  # the newcomer's welcome; nothing to the erased woman
    async with transaction(hamroh.engine) as db:
        kept = [c.id for c in (await db.exec(select(Contact).order_by(col(Contact.id)))).all()]
    assert kept == [subscribed.id, in_case.id, kept[-1]]
    assert first.id not in kept


async def test_a_place_on_a_course_not_yet_ended_keeps_a_silent_woman(hamroh: Hamroh, clock: Clock) -> None:
    addresses = ("+992927300001", "+992927300002", "+992927300003", "+992927300004")
    for n, address in enumerate(addresses, start=1):
        await she_writes(hamroh, address, "Салом", 10 + n)
    today, now = clock().date(), clock()
    async with transaction(hamroh.engine) as db:
        enrolled, waiting, ended, undated = (await db.exec(select(Contact).order_by(col(Contact.id)))).all()
        running = CourseRow(
            title_tg="А", title_ru="А", starts_on=today, ends_on=today + timedelta(days=400), created_at=now
        )
        over = CourseRow(
            title_tg="Б", title_ru="Б", starts_on=today, ends_on=today + timedelta(days=30), created_at=now
        )
        someday = CourseRow(title_tg="В", title_ru="В", created_at=now)  # no dates yet: it has not ended
        db.add_all([running, over, someday])
        await db.flush()
        for contact, course, status in (
            (enrolled, running, "enrolled"),
            (waiting, running, "waiting"),
            (ended, over, "enrolled"),
            (undated, someday, "waiting"),
        ):
            assert contact.id is not None
            assert course.id is not None
            db.add(
                Enrolment(
                    course_id=course.id, contact_id=contact.id, status=status, created_at=now, updated_at=now
                )
            )
    clock.advance(days=365, seconds=1)
    assert (await run_sweep(hamroh)).contacts_erased == 1  # her course ended 11 months ago
    async with transaction(hamroh.engine) as db:
        kept = [c.id for c in (await db.exec(select(Contact).order_by(col(Contact.id)))).all()]
        places = [(e.contact_id, e.status) for e in (await db.exec(select(Enrolment))).all()]
    assert kept == [enrolled.id, waiting.id, undated.id]
    assert sorted(places, key=str) == sorted(
        [(enrolled.id, "enrolled"), (waiting.id, "waiting"), (undated.id, "waiting")], key=str
    )


async def test_retention_runs_once_across_processes(hamroh: Hamroh, clock: Clock) -> None:
    every = timedelta(seconds=30)
    first = await retention.run_if_due(hamroh.engine, hamroh.vault, policy=POLICY, every=every, now=clock())
    again = await retention.run_if_due(hamroh.engine, hamroh.vault, policy=POLICY, every=every, now=clock())
    assert first is not None
    assert again is None
    clock.advance(seconds=30)
    later = await retention.run_if_due(hamroh.engine, hamroh.vault, policy=POLICY, every=every, now=clock())
    assert later is not None


def test_settings_keep_safe_defaults_and_refuse_retention_that_makes_no_sense() -> None:
    settings = Settings(env="development")
    assert (settings.outbox_body_minutes, settings.outbox_days, settings.delivery_days) == (0, 3, 3)
    assert (settings.session_history_hours, settings.inactive_days) == (24, 365)
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        Settings(env="development", delivery_days=0.5)  # Telegram redelivers for up to a day
    with pytest.raises(ValidationError, match="HAMROH_INACTIVE_DAYS"):
        Settings(env="development", inactive_days=40, transcript_days=60)
    with pytest.raises(ValidationError, match="HAMROH_OUTBOX_BODY_MINUTES"):
        Settings(env="development", outbox_days=0.5, outbox_body_minutes=1000)
