"""Courses as coordinators manage them: checked and written, listed with their counts, taken off with every
woman on them told, and their lists exported for the training partner (audited).

Every function works inside the caller's transaction. Refusals are CourseInvalid (the reason is for the
coordinator, in English) and CourseNotFound.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.announcements.enrolment import DUSHANBE, LIVE, fill_places, lock_course, starts_at, tell_row
from bot.conversation.flows import FlowSet
from bot.staff.audit import record
from bot.store import Contact, Staff
from bot.store.courses import CANCELLED, ENROLLED, PARTNER_FIELDS, CourseRow, Enrolment
from bot.store.crypto import Vault

TITLE_MAX = 200
DESCRIPTION_MAX = 1000
PLACE_MAX = 200
PARTNER_MAX = 200
CAPACITY_MAX = 10_000
EXPORTED = "exported_enrolments"  # the audit action of a partner's list
# A cell a spreadsheet would run as a formula begins with one of these; such a cell gets a leading "'".
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Control characters, and lone surrogates a JSON body may carry: neither the database nor a phone takes them.
_UNWRITABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


class CourseError(Exception):
    """A course step that cannot be done; the message says why."""


class CourseInvalid(CourseError, ValueError):
    """What was given for a course cannot be taken as it is."""


class CourseNotFound(CourseError, LookupError):
    """No such course."""


@dataclass(frozen=True)
class CourseFields:
    """Everything a coordinator writes about a course."""

    title_tg: str
    title_ru: str
    starts_on: date | None  # needed: CourseInvalid without it
    title_en: str = ""
    description_tg: str = ""
    description_ru: str = ""
    district: str | None = None  # None: for women of every district
    place: str = ""
    ends_on: date | None = None
    capacity: int | None = None  # None: no limit
    partner: str = ""
    partner_fields: tuple[str, ...] = ("phone",)


@dataclass(frozen=True)
class CourseSummary:
    """A course with how many women hold a place and how many wait."""

    course: CourseRow
    enrolled: int
    waiting: int


@dataclass(frozen=True)
class Export:
    """A course's list for its partner: the CSV text and how many women it names."""

    filename: str
    text: str
    rows: int


@dataclass
class Taken:
    """What taking a course off did: how many women were on it, and how many of them were told."""

    women: int = 0
    told: int = 0


def check(fields: CourseFields, flows: FlowSet) -> CourseFields:
    """The fields with spaces trimmed, or CourseInvalid naming the first thing wrong."""
    clean = replace(
        fields,
        title_tg=_nfc(fields.title_tg),
        title_ru=_nfc(fields.title_ru),
        title_en=_nfc(fields.title_en),
        description_tg=_nfc(fields.description_tg),
        description_ru=_nfc(fields.description_ru),
        district=(fields.district or "").strip() or None,
        place=_nfc(fields.place),
        partner=_nfc(fields.partner),
        partner_fields=tuple(dict.fromkeys(f.strip() for f in fields.partner_fields if f.strip())),
    )
    for name, value in asdict(clean).items():
        if isinstance(value, str) and _UNWRITABLE.search(value):
            raise CourseInvalid(f"{name}: holds a character that is not text")
    if not clean.title_tg or not clean.title_ru:
        raise CourseInvalid(f"{'title_tg' if not clean.title_tg else 'title_ru'}: a title is needed")
    for name, limit in (
        ("title_tg", TITLE_MAX),
        ("title_ru", TITLE_MAX),
        ("title_en", TITLE_MAX),
        ("description_tg", DESCRIPTION_MAX),
        ("description_ru", DESCRIPTION_MAX),
        ("place", PLACE_MAX),
        ("partner", PARTNER_MAX),
    ):
        if len(getattr(clean, name)) > limit:
            raise CourseInvalid(f"{name}: at most {limit} characters")
    if clean.district is not None and clean.district not in flows.districts:
        raise CourseInvalid(f"district: no district {clean.district[:64]!r}; use a district id, or none")
    if clean.starts_on is None:
        raise CourseInvalid("starts_on: the first day is needed")
    if clean.ends_on is not None and clean.ends_on < clean.starts_on:
        raise CourseInvalid("ends_on: the course cannot end before it starts")
    if clean.capacity is not None and not 1 <= clean.capacity <= CAPACITY_MAX:
        raise CourseInvalid(f"capacity: from 1 to {CAPACITY_MAX}, or none for no limit")
    unknown = [f for f in clean.partner_fields if f not in PARTNER_FIELDS]
    if unknown:
        raise CourseInvalid(f"partner_fields: {unknown[0][:32]!r} is not one of {', '.join(PARTNER_FIELDS)}")
    return clean


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


def fields_of(course: CourseRow) -> CourseFields:
    """A course's fields as written, for an edit form or a partial change."""
    return CourseFields(
        title_tg=course.title_tg,
        title_ru=course.title_ru,
        title_en=course.title_en,
        description_tg=course.description_tg,
        description_ru=course.description_ru,
        district=course.district,
        place=course.place,
        starts_on=course.starts_on,
        ends_on=course.ends_on,
        capacity=course.capacity,
        partner=course.partner,
        partner_fields=partner_fields(course),
    )


def partner_fields(course: CourseRow) -> tuple[str, ...]:
    """What the partner of this course may see of each woman, in PARTNER_FIELDS' order."""
    chosen = {f.strip() for f in course.partner_fields.split(",")}
    return tuple(f for f in PARTNER_FIELDS if f in chosen)


def _write(course: CourseRow, fields: CourseFields) -> None:
    values = asdict(fields)
    values["partner_fields"] = ",".join(f for f in PARTNER_FIELDS if f in fields.partner_fields)
    for name, value in values.items():
        setattr(course, name, value)


async def create(
    db: AsyncSession, flows: FlowSet, *, fields: CourseFields, today: date, now: datetime
) -> CourseRow:
    """A new active course; it may not start before `today` (Dushanbe)."""
    clean = check(fields, flows)
    if clean.starts_on is not None and clean.starts_on < today:
        raise CourseInvalid("starts_on: the course would have started already")
    course = CourseRow(title_tg=clean.title_tg, title_ru=clean.title_ru, created_at=now, updated_at=now)
    _write(course, clean)
    db.add(course)
    await db.flush()
    return course


async def update(
    db: AsyncSession,
    vault: Vault,
    flows: FlowSet,
    *,
    course_id: int,
    changes: Mapping[str, Any],
    now: datetime,
) -> CourseRow:
    """Change some of a course's fields (names of CourseFields). Capacity may not fall below the women
    already holding a place; places it adds go to the waiting list, oldest first, each woman told."""
    course = await lock_course(db, course_id)
    if course is None:
        raise CourseNotFound(f"no course {course_id}")
    unknown = set(changes) - set(CourseFields.__dataclass_fields__)
    if unknown:
        raise CourseInvalid(f"{sorted(unknown)[0]}: not a field of a course")
    before = fields_of(course)
    clean = check(CourseFields(**{**asdict(before), **changes}), flows)
    if clean.capacity is not None and clean.capacity != before.capacity:
        enrolled = (await counts(db, [course_id])).get(course_id, (0, 0))[0]
        if clean.capacity < enrolled:
            raise CourseInvalid(f"capacity: {enrolled} women hold a place already")
    _write(course, clean)
    course.updated_at = now
    db.add(course)
    if clean.starts_on != before.starts_on:  # a new first day: each woman is reminded of it
        await db.exec(
            sa.update(Enrolment)
            .where(col(Enrolment.course_id) == course_id, col(Enrolment.status).in_(LIVE))
            .values(reminded_at=None)
        )
    await db.flush()
    await fill_places(db, vault, flows, course, now)
    return course


async def counts(db: AsyncSession, course_ids: Iterable[int] | None = None) -> dict[int, tuple[int, int]]:
    """Course id -> (enrolled, waiting), for the given courses or all."""
    query = (
        select(Enrolment.course_id, Enrolment.status, sa.func.count())
        .where(col(Enrolment.status).in_(LIVE))
        .group_by(col(Enrolment.course_id), col(Enrolment.status))
    )
    if course_ids is not None:
        query = query.where(col(Enrolment.course_id).in_(list(course_ids)))
    found: dict[int, tuple[int, int]] = {}
    for course_id, status, count in (await db.exec(query)).all():
        enrolled, waiting = found.get(course_id, (0, 0))
        found[course_id] = (int(count), waiting) if status == ENROLLED else (enrolled, int(count))
    return found


async def list_courses(db: AsyncSession) -> list[CourseSummary]:
    """Every course, active ones first, soonest first, with its counts."""
    query = select(CourseRow).order_by(
        col(CourseRow.active).desc(), col(CourseRow.starts_on), col(CourseRow.id)
    )
    courses = (await db.exec(query)).all()
    found = await counts(db)
    return [CourseSummary(c, *found.get(c.id or 0, (0, 0))) for c in courses]


async def get(db: AsyncSession, course_id: int) -> CourseSummary:
    """One course with its counts (CourseNotFound)."""
    course = await db.get(CourseRow, course_id)
    if course is None:
        raise CourseNotFound(f"no course {course_id}")
    return CourseSummary(course, *(await counts(db, [course_id])).get(course_id, (0, 0)))


async def deactivate(
    db: AsyncSession, vault: Vault, flows: FlowSet, *, course_id: int, now: datetime
) -> Taken:
    """Take a course off the lists: every woman on it or waiting is told it will not take place, and her
    enrolment is cancelled (what she shared for the partner goes with it). A course that has begun is only
    put away: its enrolments stay as they are and nobody is told."""
    course = await lock_course(db, course_id)
    if course is None:
        raise CourseNotFound(f"no course {course_id}")
    course.active, course.updated_at = False, now
    db.add(course)
    if has_begun(course, now):  # put away once it has run: the women on it took part, nothing to tell
        await db.flush()
        return Taken()
    return await _tell_all(db, vault, flows, course, now)


def has_begun(course: CourseRow, now: datetime) -> bool:
    """Whether the course's first morning has come (then taking it off tells nobody)."""
    begins = starts_at(course)
    return begins is not None and now >= begins


async def reactivate(db: AsyncSession, *, course_id: int, now: datetime) -> CourseRow:
    """List a course again (nobody is on it: deactivating cancelled every enrolment)."""
    course = await lock_course(db, course_id)
    if course is None:
        raise CourseNotFound(f"no course {course_id}")
    course.active, course.updated_at = True, now
    db.add(course)
    await db.flush()
    return course


async def delete(db: AsyncSession, vault: Vault, flows: FlowSet, *, course_id: int, now: datetime) -> Taken:
    """Delete a course and its enrolments, every woman on it or waiting told first (unless it has begun)."""
    course = await lock_course(db, course_id)
    if course is None:
        raise CourseNotFound(f"no course {course_id}")
    taken = Taken() if has_begun(course, now) else await _tell_all(db, vault, flows, course, now)
    await db.exec(sa.delete(Enrolment).where(col(Enrolment.course_id) == course_id))
    await db.delete(course)
    await db.flush()
    return taken


async def _tell_all(
    db: AsyncSession, vault: Vault, flows: FlowSet, course: CourseRow, now: datetime
) -> Taken:
    query = (
        select(Enrolment, Contact)
        .join(Contact, col(Contact.id) == col(Enrolment.contact_id))
        .where(Enrolment.course_id == course.id, col(Enrolment.status).in_(LIVE))
        .order_by(col(Enrolment.id))
    )
    taken = Taken()
    for mine, contact in (await db.exec(query)).all():
        mine.status, mine.details, mine.updated_at = CANCELLED, None, now
        db.add(mine)
        taken.women += 1
        row = tell_row(
            vault, flows, contact=contact, key="course_cancelled", course=course, now=now, kind="bulk"
        )
        if row is not None:
            db.add(row)
            taken.told += 1
    await db.flush()
    return taken


async def export(db: AsyncSession, vault: Vault, *, course_id: int, staff: Staff, now: datetime) -> Export:
    """The course's list for its partner, audited (who, which course, how many rows; never the data).

    Columns: course, the fields the partner asked for (each woman's value only if she agreed to share
    it), status and the day she enrolled (Dushanbe). Women with a place first, then the waiting list in
    its order. No contact id, no fingerprint, nothing else.
    """
    course = await db.get(CourseRow, course_id)
    if course is None:
        raise CourseNotFound(f"no course {course_id}")
    wanted = partner_fields(course)
    query = (
        select(Enrolment)
        .where(Enrolment.course_id == course_id, col(Enrolment.status).in_(LIVE))
        .order_by(
            sa.case((col(Enrolment.status) == ENROLLED, 0), else_=1),
            col(Enrolment.created_at),
            col(Enrolment.id),
        )
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["course", *wanted, "status", "enrolled_on"])
    count = 0
    for mine in (await db.exec(query)).all():
        shared = _opened(vault, mine.details)
        cells = [shared.get(name, "") for name in wanted]
        day = mine.created_at.astimezone(DUSHANBE).date().isoformat()
        writer.writerow([_cell(course.title_ru), *(_cell(c) for c in cells), mine.status, day])
        count += 1
    await record(db, staff=staff, action=EXPORTED, detail=f"course {course_id}: {count} rows", now=now)
    return Export(f"course-{course_id}-enrolments.csv", out.getvalue(), count)


def _opened(vault: Vault, sealed: bytes | None) -> dict[str, str]:
    if sealed is None:
        return {}
    try:
        value = json.loads(vault.open(sealed))
    except ValueError:  # a key that no longer opens it: the row stays, the partner gets no details
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _cell(value: str) -> str:
    """A value as text a spreadsheet will not run; a phone number in E.164 stays as it is."""
    if value.startswith(FORMULA_STARTS) and not (value.startswith("+") and value[1:].isdigit()):
        return "'" + value
    return value
