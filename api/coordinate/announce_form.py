"""What the announcements page and API share: the page's form (what a coordinator typed and ticked, in
words and as the steps take it), the stored filters and names, and the status that says why a step was
refused. No step is taken here: the routes in api/coordinate/announcements.py and api/rest do that.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.datastructures import FormData

from bot.announcements.audience import Audience
from bot.announcements.drafts import (
    AnnouncementConflict,
    AnnouncementError,
    AnnouncementInvalid,
    AnnouncementNotFound,
)
from bot.conversation.flows import FlowSet
from bot.conversation.hours import DUSHANBE
from bot.store import Staff
from bot.store.announcements import Announcement
from bot.store.courses import CourseRow

FILTER_KEYS = ("regions", "districts", "langs", "channels", "topics", "courses")
REGION_LABELS = {
    "dushanbe": "Dushanbe",
    "sughd": "Sughd",
    "khatlon": "Khatlon",
    "drs": "Districts of Republican Subordination",
    "gbao": "Gorno-Badakhshan (GBAO)",
}
LANG_LABELS = {"tg": "Tajik", "ru": "Russian", "en": "English"}
CHANNEL_LABELS = {"telegram": "Telegram", "sms": "SMS"}
TOPIC_LABELS = {"training": "Training", "legal_aid": "Legal-aid days", "health": "Health", "events": "Events"}
SCRIPT_LABELS = {"cyrillic": "Cyrillic", "plain": "plain Cyrillic", "latin": "Latin"}
COUNT_LABELS = (
    ("queued", "Queued"),
    ("held", "Held for her safe hours"),
    ("sent", "Sent"),
    ("delivered", "Delivered"),
    ("failed", "Failed"),
    ("blocked", "Blocked"),
    ("in_doubt", "In doubt"),
    ("cancelled", "Cancelled"),
)
LONGEST_FIELD = 20_000  # the steps refuse over-long texts and say so; this only stops absurd posts


@dataclass
class Composed:
    """What the compose form holds: the texts and the chosen filters, as typed."""

    text: dict[str, str] = field(default_factory=lambda: {"tg": "", "ru": ""})
    filters: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in FILTER_KEYS})

    @classmethod
    def of(cls, form: FormData) -> Composed:
        """The form's texts and filters (every value a string; repeated keys kept in order)."""
        text = {lang: form_field(form, f"text_{lang}") for lang in ("tg", "ru")}
        filters = {key: [v for v in form.getlist(key) if isinstance(v, str)][:500] for key in FILTER_KEYS}
        return cls(text=text, filters=filters)

    def audience(self, flows: FlowSet) -> Audience:
        """The filters as the steps take them (AnnouncementInvalid for what they cannot be)."""
        data: dict[str, list[Any]] = {k: list(v) for k, v in self.filters.items()}
        courses: list[int] = []
        for value in self.filters["courses"]:
            if not value.isdigit() or len(value) > 9:
                raise AnnouncementInvalid("choose courses from the list")
            courses.append(int(value))
        data["courses"] = courses
        return Audience.from_json(data, flows)

    def chosen(self, key: str, value: object) -> bool:
        """Whether the form has this value ticked."""
        return str(value) in self.filters.get(key, [])


def dushanbe_time(value: str) -> datetime:
    """A datetime-local value ("2026-12-01T10:30") read as Asia/Dushanbe time."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise AnnouncementInvalid("choose a date and a time to send it") from None
    return moment.replace(tzinfo=DUSHANBE) if moment.tzinfo is None else moment


async def courses(db: AsyncSession) -> list[CourseRow]:
    query = (
        select(CourseRow).where(col(CourseRow.active)).order_by(col(CourseRow.starts_on), col(CourseRow.id))
    )
    return list((await db.exec(query)).all())


def course_label(course: CourseRow) -> str:
    title = course.title_en or course.title_ru or course.title_tg
    return f"{title} ({course.starts_on:%d %b %Y})" if course.starts_on else title


def regions(flows: FlowSet, composed: Composed) -> list[dict[str, Any]]:
    """Regions in a steady order, each with its districts by English name (open if any is ticked)."""
    by_region: dict[str, list[tuple[str, str]]] = {}
    for district in flows.districts.values():
        name = district.names.get("en") or district.names.get("ru") or district.id
        by_region.setdefault(district.region, []).append((district.id, name))
    order = [r for r in REGION_LABELS if r in by_region] + sorted(set(by_region) - set(REGION_LABELS))
    return [
        {
            "id": r,
            "label": REGION_LABELS.get(r, r.title()),
            "districts": sorted(by_region[r], key=lambda d: d[1]),
            "open": composed.chosen("regions", r)
            or any(composed.chosen("districts", d) for d, _ in by_region[r]),
        }
        for r in order
    ]


def chosen_labels(filters: dict[str, list[Any]], flows: FlowSet, courses: list[CourseRow]) -> list[str]:
    """The filters in words ("Region: Sughd"); empty means everyone who subscribed."""
    titles = {c.id: course_label(c) for c in courses}
    label: dict[str, Callable[[Any], str]] = {
        "regions": lambda v: "Region: " + REGION_LABELS.get(str(v), str(v)),
        "districts": lambda v: (
            "District: " + (flows.districts[v].names.get("en", v) if v in flows.districts else str(v))
        ),
        "langs": lambda v: "Language: " + LANG_LABELS.get(str(v), str(v)),
        "channels": lambda v: "Channel: " + CHANNEL_LABELS.get(str(v), str(v)),
        "topics": lambda v: "Topic: " + TOPIC_LABELS.get(str(v), str(v)),
        "courses": lambda v: "Course: " + titles.get(v, f"course {v}"),
    }
    return [label[key](value) for key in FILTER_KEYS for value in filters.get(key, [])]


def form_field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value[:LONGEST_FIELD] if isinstance(value, str) else ""


STATUS_OF: dict[type[AnnouncementError], int] = {
    AnnouncementNotFound: 404,
    AnnouncementConflict: 409,
    AnnouncementInvalid: 422,
}


def status_of(error: AnnouncementError) -> int:
    """The HTTP status that says why a step on an announcement could not be done."""
    return next((code for kind, code in STATUS_OF.items() if isinstance(error, kind)), 409)


def filters_of(announcement: Announcement) -> dict[str, list[Any]]:
    """The filters as the coordinator chose them (stored as JSON)."""
    try:
        stored = json.loads(announcement.audience or "{}")
    except ValueError:
        return {}
    return {k: list(v) for k, v in stored.items() if isinstance(v, list)} if isinstance(stored, dict) else {}


async def staff_names(db: AsyncSession, announcements: Sequence[Announcement]) -> dict[int, str]:
    """Who wrote and who approved these announcements, by id."""
    ids = {i for a in announcements for i in (a.created_by, a.approved_by) if i is not None}
    if not ids:
        return {}
    rows = await db.exec(select(Staff.id, Staff.name).where(col(Staff.id).in_(ids)))
    return {staff_id: name for staff_id, name in rows.all() if staff_id is not None}
