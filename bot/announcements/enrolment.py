"""Enrolment in training courses: a place or the waiting list, cancelling, and moving the next woman up.

Every function works inside the caller's transaction. Capacity holds under concurrency because enrolling
and cancelling first lock the course's row (PostgreSQL `FOR UPDATE`; SQLite write transactions are already
one at a time, begun IMMEDIATE), so counting the places taken and taking one are a single step.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.cases.deliver import to_her
from bot.conversation.flows import FlowSet
from bot.conversation.screens import date_in_words
from bot.store import Contact, OutboxMessage
from bot.store.courses import CANCELLED, ENROLLED, WAITING, CourseRow, Enrolment
from bot.store.crypto import Vault

Outcome = Literal["enrolled", "waiting", "already_enrolled", "already_waiting", "closed"]

DUSHANBE = ZoneInfo("Asia/Dushanbe")
# Courses have a first day but no hour: a course is taken to begin at 09:00 Dushanbe time on that day,
# which is when enrolment closes and what reminders count back from.
COURSE_START_TIME = time(9, 0)
LIVE = (ENROLLED, WAITING)
FALLBACK_LANG = "tg"


def starts_at(course: CourseRow) -> datetime | None:
    """When the course begins (UTC-aware), or None when it has no first day yet."""
    if course.starts_on is None:
        return None
    return datetime.combine(course.starts_on, COURSE_START_TIME, tzinfo=DUSHANBE)


def is_open(course: CourseRow, now: datetime) -> bool:
    """Whether women may still enrol: the course is active and has not begun."""
    begins = starts_at(course)
    return course.active and (begins is None or now < begins)


def title_in(course: CourseRow, lang: str) -> str:
    """The course's title in her language (Russian for English readers when no English title was given)."""
    if lang == "tg":
        return course.title_tg
    if lang == "en" and course.title_en:
        return course.title_en
    return course.title_ru


def message_for(flows: FlowSet, key: str, course: CourseRow, lang: str) -> str:
    """A training message (`place_freed`, `course_reminder`, `course_cancelled`) in her language."""
    day: date | None = course.starts_on
    return flows.text(lang, flows.strings[key]).format(
        course=title_in(course, lang),
        date=date_in_words(day, lang) if day is not None else "",
        place=course.place,
    )


async def lock_course(db: AsyncSession, course_id: int) -> CourseRow | None:
    """The course, its row locked until the transaction ends (on PostgreSQL; SQLite has one writer)."""
    query = (
        select(CourseRow)
        .where(CourseRow.id == course_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await db.exec(query)).first()


async def _enrolled_count(db: AsyncSession, course_id: int) -> int:
    query = (
        select(sa.func.count())
        .select_from(Enrolment)
        .where(Enrolment.course_id == course_id, Enrolment.status == ENROLLED)
    )
    return int((await db.exec(query)).one())


async def _hers(db: AsyncSession, course_id: int, contact_id: int) -> Enrolment | None:
    query = select(Enrolment).where(Enrolment.course_id == course_id, Enrolment.contact_id == contact_id)
    return (await db.exec(query.execution_options(populate_existing=True))).first()


async def enrol(
    db: AsyncSession,
    vault: Vault,
    *,
    course_id: int,
    contact_id: int,
    details: Mapping[str, str],
    now: datetime,
) -> Outcome:
    """Give her a place, or a place on the waiting list when the course is full.

    `details` is exactly what she agreed to share with the partner, sealed; a cancelled enrolment of hers
    is taken up again (one row per course and woman). "closed": inactive, deleted or already begun.
    """
    course = await lock_course(db, course_id)
    if course is None or not is_open(course, now):
        return "closed"
    mine = await _hers(db, course_id, contact_id)
    if mine is not None and mine.status == ENROLLED:
        return "already_enrolled"
    if mine is not None and mine.status == WAITING:
        return "already_waiting"
    full = course.capacity is not None and await _enrolled_count(db, course_id) >= course.capacity
    status = WAITING if full else ENROLLED
    sealed = vault.seal(json.dumps(dict(details), ensure_ascii=False))
    if mine is None:
        mine = Enrolment(course_id=course_id, contact_id=contact_id, status=status, details=sealed)
    # Taken up again, she joins the end of the waiting list and her reminder is due again.
    mine.status, mine.details, mine.reminded_at = status, sealed, None
    mine.created_at = mine.updated_at = now
    db.add(mine)
    await db.flush()
    return "waiting" if full else "enrolled"


async def cancel(
    db: AsyncSession,
    vault: Vault,
    flows: FlowSet,
    *,
    course_id: int,
    contact_id: int,
    now: datetime,
) -> bool:
    """Cancel her place or her place on the waiting list (False if she had neither).

    A place she gives up goes to the woman longest on the waiting list, who is told through the outbox,
    in her language and letters, within her safe hours (string `place_freed`).
    """
    course = await lock_course(db, course_id)
    mine = await _hers(db, course_id, contact_id)
    if course is None or mine is None or mine.status not in LIVE:
        return False
    held_place = mine.status == ENROLLED
    # What she shared was for the partner of this course: it goes with her enrolment.
    mine.status, mine.details, mine.updated_at = CANCELLED, None, now
    db.add(mine)
    await db.flush()
    if held_place:
        await fill_places(db, vault, flows, course, now)
    return True


async def give_up_all(
    db: AsyncSession, vault: Vault, flows: FlowSet, *, contact_id: int, now: datetime
) -> int:
    """Cancel each of her enrolments and places on a waiting list, each freed place going to the next woman
    (as `cancel`); how many. For erasing her: deleting her rows alone would leave her places empty."""
    query = select(Enrolment.course_id).where(
        Enrolment.contact_id == contact_id, col(Enrolment.status).in_(LIVE)
    )
    course_ids = sorted((await db.exec(query)).all())  # locked in one order: no deadlock with another erasure
    for course_id in course_ids:
        await cancel(db, vault, flows, course_id=course_id, contact_id=contact_id, now=now)
    return len(course_ids)


async def fill_places(
    db: AsyncSession, vault: Vault, flows: FlowSet, course: CourseRow, now: datetime
) -> int:
    """Move women up from the waiting list (oldest first) into the places free, each told through the
    outbox (`place_freed`); how many moved. Call with the course's row locked (lock_course)."""
    assert course.id is not None
    if not is_open(course, now):
        return 0
    query = (
        select(Enrolment)
        .where(Enrolment.course_id == course.id, Enrolment.status == WAITING)
        .order_by(col(Enrolment.created_at), col(Enrolment.id))
    )
    if course.capacity is not None:
        free = course.capacity - await _enrolled_count(db, course.id)
        if free <= 0:
            return 0
        query = query.limit(free)
    moved = 0
    for nextup in (await db.exec(query)).all():
        nextup.status, nextup.updated_at = ENROLLED, now
        db.add(nextup)
        moved += 1
        contact = await db.get(Contact, nextup.contact_id)
        if contact is not None:
            row = tell_row(vault, flows, contact=contact, key="place_freed", course=course, now=now)
            if row is not None:
                db.add(row)
    await db.flush()
    return moved


def tell_row(
    vault: Vault,
    flows: FlowSet,
    *,
    contact: Contact,
    key: str,
    course: CourseRow,
    now: datetime,
    kind: str = "reply",
) -> OutboxMessage | None:
    """The outbox row (not yet added) of one training message to her, held to her safe hours.

    None when she has stopped all messages on her channel.
    """
    if contact.opted_out:
        return None
    text = message_for(flows, key, course, contact.lang or FALLBACK_LANG)
    return to_her(vault, contact=contact, text=text, now=now, kind=kind)


async def standing(db: AsyncSession, *, contact_id: int) -> dict[int, str]:
    """Course id -> "enrolled" or "waiting", for each course she is on or waiting for."""
    query = select(Enrolment.course_id, Enrolment.status).where(
        Enrolment.contact_id == contact_id, col(Enrolment.status).in_(LIVE)
    )
    return {course_id: status for course_id, status in (await db.exec(query)).all()}


async def places_left(db: AsyncSession, course_ids: Sequence[int]) -> dict[int, int | None]:
    """Course id -> places still free (never below 0), or None for a course without a limit."""
    if not course_ids:
        return {}
    taken = (
        select(sa.func.count())
        .select_from(Enrolment)
        .where(col(Enrolment.course_id) == col(CourseRow.id), Enrolment.status == ENROLLED)
        .scalar_subquery()
    )
    query = select(CourseRow.id, CourseRow.capacity, taken).where(col(CourseRow.id).in_(list(course_ids)))
    left: dict[int, int | None] = {}
    for course_id, capacity, count in (await db.exec(query)).all():
        assert course_id is not None
        left[course_id] = None if capacity is None else max(capacity - int(count), 0)
    return left
