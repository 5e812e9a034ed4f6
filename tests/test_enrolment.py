"""Enrolment as women live it: a place, the waiting list, cancelling and the next woman moved up and told;
capacity holding when 100 women enrol at the same moment; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.announcements import enrolment
from bot.conversation.flows import FlowSet
from bot.conversation.screens import date_in_words
from bot.store import Contact, OutboxMessage
from bot.store.courses import CourseRow, Enrolment
from bot.store.crypto import Vault
from bot.store.db import create_engine, transaction
from tests.conftest import Clock, telegram_contact

# The clock of the tests reads 28 November 2026, 09:00 UTC (14:00 in Dushanbe).
STARTS = date(2026, 12, 7)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def add_course(engine: AsyncEngine, now: datetime, **fields: object) -> int:
    values: dict[str, object] = {
        "title_tg": "Дӯзандагӣ",
        "title_ru": "Швейное дело",
        "place": "Бохтар, ул. Айнӣ 12",
        "starts_on": STARTS,
        "capacity": 2,
        "partner": "Partner NGO",
        "created_at": now,
    }
    async with transaction(engine) as db:
        course = CourseRow.model_validate(values | fields)
        db.add(course)
        await db.flush()
        assert course.id is not None
        return course.id


async def add_women(
    engine: AsyncEngine, vault: Vault, now: datetime, count: int, **fields: object
) -> list[int]:
    async with transaction(engine) as db:
        women = []
        for n in range(count):
            woman = telegram_contact(vault, f"tg:{800000 + n}", now)
            woman.lang = "ru"
            for name, value in fields.items():
                setattr(woman, name, value)
            women.append(woman)
        db.add_all(women)
        await db.flush()
        return [w.id for w in women if w.id is not None]


async def enrol(
    engine: AsyncEngine, vault: Vault, clock: Clock, course: int, woman: int, **details: str
) -> enrolment.Outcome:
    async with transaction(engine) as db:
        return await enrolment.enrol(
            db, vault, course_id=course, contact_id=woman, details=details, now=clock()
        )


async def cancel(
    engine: AsyncEngine, vault: Vault, flows: FlowSet, clock: Clock, course: int, woman: int
) -> bool:
    async with transaction(engine) as db:
        return await enrolment.cancel(db, vault, flows, course_id=course, contact_id=woman, now=clock())


async def statuses(engine: AsyncEngine, course: int) -> dict[int, str]:
    async with transaction(engine) as db:
        rows = (await db.exec(select(Enrolment).where(Enrolment.course_id == course))).all()
        return {row.contact_id: row.status for row in rows}


async def outbox(engine: AsyncEngine) -> list[OutboxMessage]:
    async with transaction(engine) as db:
        return list((await db.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all())


async def test_places_then_the_waiting_list(engine: AsyncEngine, vault: Vault, clock: Clock) -> None:
    course = await add_course(engine, clock())
    open_course = await add_course(engine, clock(), capacity=None)
    first, second, third = await add_women(engine, vault, clock(), 3)

    assert await enrol(engine, vault, clock, course, first, phone="+992901112233") == "enrolled"
    assert await enrol(engine, vault, clock, course, second) == "enrolled"
    assert await enrol(engine, vault, clock, course, third, name="Gulnora") == "waiting"
    assert await enrol(engine, vault, clock, course, first) == "already_enrolled"
    assert await enrol(engine, vault, clock, course, third) == "already_waiting"
    assert await enrol(engine, vault, clock, open_course, third) == "enrolled"

    async with transaction(engine) as db:
        assert await enrolment.standing(db, contact_id=third) == {course: "waiting", open_course: "enrolled"}
        assert await enrolment.standing(db, contact_id=second) == {course: "enrolled"}
        assert await enrolment.places_left(db, [course, open_course]) == {course: 0, open_course: None}
        rows = (await db.exec(select(Enrolment).where(Enrolment.contact_id == first))).all()
    # What she agreed to share is sealed: the phone is not in the row, and opens to exactly what she gave.
    assert rows[0].details is not None
    assert b"+992" not in rows[0].details
    assert json.loads(vault.open(rows[0].details)) == {"phone": "+992901112233"}


async def test_closed_courses(engine: AsyncEngine, vault: Vault, flows: FlowSet, clock: Clock) -> None:
    inactive = await add_course(engine, clock(), active=False)
    # It begins at 09:00 Dushanbe time (04:00 UTC) on its first day: at 04:00 UTC it is too late.
    today = await add_course(engine, clock(), starts_on=date(2026, 11, 29))
    (woman,) = await add_women(engine, vault, clock(), 1)

    assert await enrol(engine, vault, clock, inactive, woman) == "closed"
    assert await enrol(engine, vault, clock, 999_999, woman) == "closed"
    clock.now = datetime(2026, 11, 29, 3, 59, tzinfo=UTC)
    assert await enrol(engine, vault, clock, today, woman) == "enrolled"
    assert await cancel(engine, vault, flows, clock, today, woman)
    clock.now = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)
    assert await enrol(engine, vault, clock, today, woman) == "closed"


async def test_a_place_given_up_goes_to_the_longest_waiting(
    engine: AsyncEngine, vault: Vault, flows: FlowSet, clock: Clock
) -> None:
    course = await add_course(engine, clock())
    a, b, c, d = await add_women(engine, vault, clock(), 4)
    async with transaction(engine) as db:
        her = await db.get(Contact, c)
        assert her is not None
        her.safe_hours = "18-21"  # 13:00-16:00 UTC; the clock reads 14:00 in Dushanbe
        db.add(her)
    for woman in (a, b, c, d):
        await enrol(engine, vault, clock, course, woman)
        clock.advance(minutes=1)

    # Giving up a place on the waiting list frees no place.
    assert await cancel(engine, vault, flows, clock, course, d)
    assert not await cancel(engine, vault, flows, clock, course, d)
    assert await outbox(engine) == []

    assert await cancel(engine, vault, flows, clock, course, a)
    assert await statuses(engine, course) == {a: "cancelled", b: "enrolled", c: "enrolled", d: "cancelled"}
    (row,) = await outbox(engine)
    assert row.contact_id == c
    assert row.kind == "reply"
    assert row.held
    assert row.next_attempt_at == datetime(2026, 11, 28, 13, 0, tzinfo=UTC)
    text = json.loads(vault.open(row.body))["text"]
    assert text == flows.text("ru", flows.strings["place_freed"]).format(
        course="Швейное дело", date=date_in_words(STARTS, "ru"), place=""
    )
    assert "Швейное дело" in text
    assert "7 декабря 2026" in text

    # Enrolling again after cancelling reuses her row: she joins the end of the waiting list.
    assert await enrol(engine, vault, clock, course, a) == "waiting"
    async with transaction(engine) as db:
        rows = (await db.exec(select(Enrolment).where(Enrolment.contact_id == a))).all()
        assert [r.status for r in rows] == ["waiting"]
        cancelled = (await db.exec(select(Enrolment).where(Enrolment.contact_id == d))).one()
        assert cancelled.details is None  # what she shared leaves with her enrolment


async def test_she_is_told_in_her_language_and_letters(
    engine: AsyncEngine, vault: Vault, flows: FlowSet, clock: Clock
) -> None:
    course = await add_course(engine, clock(), capacity=1)
    first, stopped, latin = await add_women(engine, vault, clock(), 3)
    async with transaction(engine) as db:
        for woman_id, fields in (
            (stopped, {"opted_out": True}),
            (
                latin,
                {"channel": "sms", "lang": "tg", "script": "latin", "address": vault.seal("+992907654321")},
            ),
        ):
            contact = await db.get(Contact, woman_id)
            assert contact is not None
            for name, value in fields.items():
                setattr(contact, name, value)
            db.add(contact)
    for woman in (first, stopped, latin):
        await enrol(engine, vault, clock, course, woman)

    # She stopped all messages: she is moved up, and not written to.
    assert await cancel(engine, vault, flows, clock, course, first)
    assert (await statuses(engine, course))[stopped] == "enrolled"
    assert await outbox(engine) == []

    assert await cancel(engine, vault, flows, clock, course, stopped)
    (row,) = await outbox(engine)
    assert row.contact_id == latin
    assert row.channel == "sms"
    assert not row.held
    text = json.loads(vault.open(row.body))["text"]
    assert text.isascii()
    assert "Duzandagi" in text


async def test_a_hundred_women_at_once_into_ten_places(
    engine: AsyncEngine, vault: Vault, flows: FlowSet, clock: Clock
) -> None:
    course = await add_course(engine, clock(), capacity=10)
    women = await add_women(engine, vault, clock(), 100)

    # Each her own transaction on her own connection: the pool (10 + 10 overflow on PostgreSQL) queues
    # the rest, and the course's row lock makes counting and taking a place one step.
    outcomes = await asyncio.gather(*(enrol(engine, vault, clock, course, woman) for woman in women))
    assert outcomes.count("enrolled") == 10
    assert outcomes.count("waiting") == 90
    standing = await statuses(engine, course)
    assert sorted(standing.values()).count("enrolled") == 10
    assert len(standing) == 100

    holder = next(w for w in women if standing[w] == "enrolled")
    async with transaction(engine) as db:
        query = select(Enrolment).where(Enrolment.course_id == course, Enrolment.status == "waiting")
        first_waiting = min((await db.exec(query)).all(), key=lambda e: (e.created_at, e.id or 0)).contact_id
    await cancel(engine, vault, flows, clock, course, holder)
    after = await statuses(engine, course)
    assert list(after.values()).count("enrolled") == 10
    assert list(after.values()).count("waiting") == 89
    moved = [w for w in women if standing[w] == "waiting" and after[w] == "enrolled"]
    assert moved == [first_waiting]
    rows = await outbox(engine)
    assert [r.contact_id for r in rows] == moved


async def test_giving_up_everything_before_she_is_erased_frees_her_places(
    engine: AsyncEngine, vault: Vault, flows: FlowSet, clock: Clock
) -> None:
    first = await add_course(engine, clock(), capacity=1)
    second = await add_course(engine, clock(), capacity=1)
    leaving, waiting_first, waiting_second = await add_women(engine, vault, clock(), 3)
    await enrol(engine, vault, clock, first, leaving)
    await enrol(engine, vault, clock, second, waiting_second)
    await enrol(engine, vault, clock, second, leaving)  # she waits for the second course
    await enrol(engine, vault, clock, first, waiting_first)

    async with transaction(engine) as db:
        assert await enrolment.give_up_all(db, vault, flows, contact_id=leaving, now=clock()) == 2
        assert await enrolment.standing(db, contact_id=leaving) == {}
    assert (await statuses(engine, first))[waiting_first] == "enrolled"
    assert (await statuses(engine, second))[waiting_second] == "enrolled"
    assert [r.contact_id for r in await outbox(engine)] == [waiting_first]
