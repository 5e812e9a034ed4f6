"""Course reminders by the clock: once per woman holding a place, a set time before 09:00 Dushanbe time on
the course's first day, in her language and letters, within her safe hours; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.announcements import courses, enrolment, reminders
from bot.conversation.screens import date_in_words
from bot.runtime import run_case_jobs
from bot.service import Hamroh
from bot.store import JobRun, OutboxMessage
from bot.store.courses import CourseRow, Enrolment
from bot.store.db import transaction
from tests.conftest import Clock, settings_for_tests, telegram_contact

STARTS = date(2026, 12, 1)  # 09:00 in Dushanbe is 04:00 UTC
BEGINS = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
DAY = timedelta(hours=24)


async def add_course(hamroh: Hamroh, **fields: object) -> int:
    values: dict[str, object] = {
        "title_tg": "Дӯзандагӣ",
        "title_ru": "Швейное дело",
        "place": "Бохтар, ул. Айнӣ 12",
        "starts_on": STARTS,
        "capacity": 2,
        "created_at": hamroh.clock(),
    }
    async with transaction(hamroh.engine) as db:
        course = CourseRow.model_validate(values | fields)
        db.add(course)
        await db.flush()
        assert course.id is not None
        return course.id


async def add_woman(hamroh: Hamroh, n: int, **fields: object) -> int:
    async with transaction(hamroh.engine) as db:
        contact = telegram_contact(hamroh.vault, f"tg:95000{n}", hamroh.clock())
        contact.lang = "ru"
        for name, value in fields.items():
            setattr(contact, name, value)
        db.add(contact)
        await db.flush()
        assert contact.id is not None
        return contact.id


async def enrol(hamroh: Hamroh, course: int, woman: int) -> str:
    async with transaction(hamroh.engine) as db:
        return await enrolment.enrol(
            db, hamroh.vault, course_id=course, contact_id=woman, details={}, now=hamroh.clock()
        )


async def remind(hamroh: Hamroh, before: timedelta = DAY) -> int:
    async with transaction(hamroh.engine) as db:
        return await reminders.remind(db, hamroh.vault, hamroh.flows, before=before, now=hamroh.clock())


async def outbox(hamroh: Hamroh) -> list[OutboxMessage]:
    async with transaction(hamroh.engine) as db:
        return list((await db.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all())


async def test_each_woman_with_a_place_is_reminded_once_before_it_begins(
    hamroh: Hamroh, clock: Clock
) -> None:
    course = await add_course(hamroh, capacity=3)
    off = await add_course(hamroh)
    ru = await add_woman(hamroh, 1)
    latin = await add_woman(
        hamroh, 2, channel="sms", lang="tg", script="latin", address=hamroh.vault.seal("+992907654321")
    )
    stopped = await add_woman(hamroh, 3, opted_out=True)
    later = await add_woman(hamroh, 4, safe_hours="18-21")
    elsewhere = await add_woman(hamroh, 5)
    for woman in (ru, latin, stopped, later):
        await enrol(hamroh, course, woman)
    await enrol(hamroh, off, elsewhere)
    async with transaction(hamroh.engine) as db:
        off_course = await db.get(CourseRow, off)
        assert off_course is not None
        off_course.active = False  # taken off (here without its enrolments cancelled): no reminders
        db.add(off_course)

    clock.now = BEGINS - DAY - timedelta(minutes=1)
    assert await remind(hamroh) == 0
    clock.now = BEGINS - DAY  # 30 November, 09:00 in Dushanbe
    assert await remind(hamroh) == 2
    assert await remind(hamroh) == 0  # once

    rows = await outbox(hamroh)
    assert [(r.contact_id, r.kind, r.held) for r in rows] == [(ru, "bulk", False), (latin, "bulk", False)]
    texts = [json.loads(hamroh.vault.open(r.body))["text"] for r in rows]
    expected = hamroh.flows.text("ru", hamroh.flows.strings["course_reminder"])
    assert texts[0] == expected.format(
        course="Швейное дело", date=date_in_words(STARTS, "ru"), place="Бохтар, ул. Айнӣ 12"
    )
    assert "1 декабря 2026" in texts[0]
    assert texts[1].isascii()
    assert "Duzandagi" in texts[1]

    # A place given up goes to the woman waiting; she is reminded at the next run, within her safe hours.
    async with transaction(hamroh.engine) as db:
        await enrolment.cancel(
            db, hamroh.vault, hamroh.flows, course_id=course, contact_id=ru, now=hamroh.clock()
        )
    clock.advance(hours=1)
    assert await remind(hamroh) == 1
    freed, reminder = (await outbox(hamroh))[2:]
    assert (freed.contact_id, reminder.contact_id) == (later, later)
    assert reminder.held
    assert reminder.next_attempt_at == datetime(2026, 11, 30, 13, 0, tzinfo=UTC)  # 18:00 in Dushanbe

    # Enrolled once the course has begun: never (enrolment closes then, and no reminder is due).
    clock.now = BEGINS
    assert await remind(hamroh) == 0
    async with transaction(hamroh.engine) as db:
        reminded = (await db.exec(select(Enrolment).where(col(Enrolment.reminded_at).is_not(None)))).all()
    # She stopped all messages: marked, not written to. Nobody on the course taken off.
    assert sorted(e.contact_id for e in reminded if e.status == "enrolled") == sorted([latin, stopped, later])


async def test_a_new_first_day_reminds_again_and_the_job_runs_once(hamroh: Hamroh, clock: Clock) -> None:
    course = await add_course(hamroh)
    woman = await add_woman(hamroh, 1)
    await enrol(hamroh, course, woman)
    clock.now = BEGINS - timedelta(hours=2)

    every = timedelta(seconds=30)
    runs = [
        await reminders.run_if_due(
            hamroh.engine, hamroh.vault, hamroh.flows, before=DAY, every=every, now=clock()
        )
        for _ in range(2)
    ]
    assert runs == [1, None]  # the second found the job ran less than 30 s ago

    async with transaction(hamroh.engine) as db:
        await courses.update(
            db,
            hamroh.vault,
            hamroh.flows,
            course_id=course,
            changes={"starts_on": date(2026, 12, 2)},
            now=clock(),
        )
    assert await remind(hamroh) == 0  # the new first day is more than 24 hours away
    clock.advance(hours=24)
    assert await remind(hamroh) == 1
    texts = [json.loads(hamroh.vault.open(r.body))["text"] for r in await outbox(hamroh)]
    assert "2 декабря 2026" in texts[-1]


async def test_the_jobs_loop_sends_reminders_the_configured_time_before(
    hamroh: Hamroh, clock: Clock, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAMROH_COURSE_REMINDER_HOURS", "6")
    settings = settings_for_tests(tmp_path, database_url, jobs_interval_seconds=1)
    assert settings.course_reminder_hours == 6
    course = await add_course(hamroh)
    await enrol(hamroh, course, await add_woman(hamroh, 1))
    clock.now = BEGINS - timedelta(hours=7)
    stop = asyncio.Event()
    loop = asyncio.create_task(run_case_jobs(settings, hamroh, stop))
    try:
        for _ in range(200):  # the loop's first round; the job row says when it ran
            async with transaction(hamroh.engine) as db:
                if (await db.exec(select(JobRun).where(JobRun.name == reminders.JOB))).first() is not None:
                    break
            await asyncio.sleep(0.02)
        assert await outbox(hamroh) == []  # 7 hours before: not yet
    finally:
        stop.set()
        await loop
    clock.now = BEGINS - timedelta(hours=6)
    stop = asyncio.Event()
    loop = asyncio.create_task(run_case_jobs(settings, hamroh, stop))
    try:
        for _ in range(200):
            if await outbox(hamroh):
                break
            await asyncio.sleep(0.02)
        assert len(await outbox(hamroh)) == 1
    finally:
        stop.set()
        await loop
