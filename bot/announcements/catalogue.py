"""The courses as her conversation sees them: read at most once a minute, and the figures that change
with every enrolment (places left, her own standing) read only for the screens that show them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.announcements import enrolment
from bot.conversation.flows import FlowSet
from bot.conversation.model import Course, PartnerField
from bot.store import CourseRow

# Screens that show places left or her standing: only turns that reach or leave them read those.
LIVE_LISTINGS = ("course", "mine")
SHAREABLE: tuple[PartnerField, ...] = ("phone", "name")  # bot.store.PARTNER_FIELDS, as the engine names them


def as_seen(row: CourseRow) -> Course:
    """A course row as the engine shows it (without the figures of the moment)."""
    assert row.id is not None
    asked = {part.strip() for part in row.partner_fields.split(",")}
    fields = tuple(f for f in SHAREABLE if f in asked)
    return Course(
        {"tg": row.title_tg, "ru": row.title_ru, "en": row.title_en or row.title_ru},
        row.district,
        row.starts_on,
        id=row.id,
        descriptions={"tg": row.description_tg, "ru": row.description_ru, "en": row.description_ru},
        place=row.place,
        ends=row.ends_on,
        capacity=row.capacity,
        partner=row.partner,
        partner_fields=fields,
    )


@dataclass
class CourseCache:
    """Active courses, read at most once a minute (they change rarely; turns are many). A course that has
    begun is no longer offered, even before the next read."""

    clock: Callable[[], datetime]
    ttl: timedelta = timedelta(seconds=60)
    _courses: tuple[tuple[Course, datetime | None], ...] = ()
    _read_at: datetime | None = None

    async def get(self, session: Callable[[], Awaitable[AsyncSession]]) -> tuple[Course, ...]:
        """The courses open for enrolment, from memory when read recently (`session` gives one to read)."""
        now = self.clock()
        if self._read_at is None or now - self._read_at > self.ttl:
            db = await session()
            rows = (await db.exec(select(CourseRow).where(CourseRow.active))).all()
            ordered = sorted(rows, key=lambda r: (r.starts_on is None, r.starts_on, r.id))
            self._courses = tuple((as_seen(r), enrolment.starts_at(r)) for r in ordered)
            self._read_at = now
        return tuple(course for course, begins in self._courses if begins is None or now < begins)

    def forget(self) -> None:
        """Read the courses again on the next turn (after a coordinator changed them)."""
        self._read_at = None


def needs_live(flows: FlowSet, ref: str | None) -> bool:
    """Whether the node `ref` shows places left or her standing."""
    node = flows.nodes.get(ref or "")
    return node is not None and node.listing in LIVE_LISTINGS


async def with_live(
    db: AsyncSession, courses: Sequence[Course], *, contact_id: int, course_id: int | None
) -> tuple[Course, ...]:
    """The courses with her standing on each, and the places left on the one she looks at."""
    standing = await enrolment.standing(db, contact_id=contact_id)
    left = await enrolment.places_left(db, [course_id]) if course_id is not None else {}
    return tuple(
        replace(
            c,
            standing="enrolled"
            if standing.get(c.id) == "enrolled"
            else "waiting"
            if c.id in standing
            else None,
            places_left=left.get(c.id, c.places_left),
        )
        for c in courses
    )
