"""Course reminders: each woman holding a place is reminded once, a set time before her course begins,
through the outbox, in her language and letters, within her safe hours.

Runs once across processes (a job row taken FOR UPDATE, as the case jobs do). A woman moved up from the
waiting list, or enrolled, after the reminders went out is reminded at the next run, until the course begins.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.announcements.enrolment import DUSHANBE, starts_at, tell_row
from bot.cases import jobs
from bot.conversation.flows import FlowSet
from bot.store import Contact
from bot.store.courses import ENROLLED, CourseRow, Enrolment
from bot.store.crypto import Vault

log = logging.getLogger(__name__)
JOB = "course_reminders"
BATCH = 1000  # women reminded in one run, so that one transaction stays short; the rest go next run


async def run_if_due(
    engine: AsyncEngine,
    vault: Vault,
    flows: FlowSet,
    *,
    before: timedelta,
    every: timedelta,
    now: datetime,
) -> int | None:
    """Queue the reminders that are due, unless another process did less than `every` ago (then None)."""

    async def work(db: AsyncSession) -> int:
        return await remind(db, vault, flows, before=before, now=now)

    queued = await jobs.run_once(engine, JOB, every=every, now=now, work=work)
    if queued:
        log.info("course reminders: %d queued", queued)
    return queued


async def remind(
    db: AsyncSession, vault: Vault, flows: FlowSet, *, before: timedelta, now: datetime, batch: int = BATCH
) -> int:
    """Remind every woman holding a place on an active course that begins within `before` (and has not
    begun) and was not reminded yet; how many reminders were queued. Each is marked reminded, written to
    or not (she may have stopped all messages), so that nobody is reminded twice."""
    # Dates first (indexed, cheap), then the exact moment: a course begins at 09:00 Dushanbe time.
    first = now.astimezone(DUSHANBE).date()
    last = (now + before).astimezone(DUSHANBE).date()
    candidates = select(CourseRow).where(
        col(CourseRow.active), col(CourseRow.starts_on) >= first, col(CourseRow.starts_on) <= last
    )
    due = []
    for course in (await db.exec(candidates)).all():
        begins = starts_at(course)
        if begins is not None and begins - before <= now < begins:
            due.append(course)
    queued = handled = 0
    for course in due:
        query = (
            select(Enrolment, Contact)
            .join(Contact, col(Contact.id) == col(Enrolment.contact_id))
            .where(
                Enrolment.course_id == course.id,
                Enrolment.status == ENROLLED,
                col(Enrolment.reminded_at).is_(None),
            )
            .order_by(col(Enrolment.id))
            .limit(batch - handled)
        )
        for mine, contact in (await db.exec(query)).all():
            mine.reminded_at = now
            db.add(mine)
            handled += 1
            row = tell_row(
                vault, flows, contact=contact, key="course_reminder", course=course, now=now, kind="bulk"
            )
            if row is not None:
                db.add(row)
                queued += 1
        await db.flush()
        if handled >= batch:
            break
    return queued
