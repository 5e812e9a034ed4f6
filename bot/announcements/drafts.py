"""An announcement from draft to sent: write it, see who it reaches and what it costs, approve, send, cancel.

Every step a coordinator takes is audited. The text is not secret, but an address never appears here:
the audience is counted, never listed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.announcements import enqueue, outcomes, sql
from bot.announcements.audience import LANGS, Audience, conditions, outbox_channel, text_lang
from bot.announcements.errors import (
    AnnouncementConflict,
    AnnouncementError,
    AnnouncementInvalid,
    AnnouncementNotFound,
)
from bot.cases.cost import price_of
from bot.channels.sms import in_script
from bot.config import Settings
from bot.conversation import hours
from bot.conversation.flows import FlowSet
from bot.conversation.model import SCRIPTS
from bot.conversation.text import sms_segments
from bot.staff import audit
from bot.store import Announcement, Contact, Staff
from bot.store.crypto import Vault

__all__ = [
    "AnnouncementConflict",
    "AnnouncementError",
    "AnnouncementInvalid",
    "AnnouncementNotFound",
    "Preview",
    "approve",
    "cancel",
    "counts",
    "create",
    "listing",
    "preview",
    "send",
]

MAX_TEXT = 1600  # characters in one language: Twilio's limit for one message body
MAX_REASON = 200
LATEST = timedelta(days=366)  # a send further ahead than this is a typo
PAST_GRACE = timedelta(minutes=5)  # a form filled slowly may name a minute just gone: that means now

DRAFT = "draft"
APPROVED = "approved"
SCHEDULED = "scheduled"
SENDING = "sending"
SENT = "sent"
CANCELLED = "cancelled"


@dataclass(frozen=True)
class Preview:
    """What sending would mean: how many women, SMS segments per language and letters, and the cost."""

    audience: int
    segments: dict[str, dict[str, int]]  # {"tg": {"cyrillic": n, "plain": n, "latin": n}, "ru": {...}}
    estimated_cost: str | None  # from settings.sms_price_per_segment over the SMS recipients


def checked_text(text: object) -> dict[str, str]:
    """The text in Tajik and Russian, both present and within the limit (AnnouncementInvalid if not)."""
    if not isinstance(text, Mapping):
        raise AnnouncementInvalid("the text is an object with tg and ru")
    unknown = sorted(str(k) for k in text if k not in LANGS)
    if unknown:
        raise AnnouncementInvalid(f"unknown language {unknown[0]!r}: write tg and ru")
    checked: dict[str, str] = {}
    for lang in LANGS:
        value = text.get(lang)
        if not isinstance(value, str) or not value.strip():
            raise AnnouncementInvalid(f"the {lang} text is empty")
        value = value.strip()
        if len(value) > MAX_TEXT:
            raise AnnouncementInvalid(f"the {lang} text has {len(value)} characters; at most {MAX_TEXT}")
        checked[lang] = value
    return checked


def segments_of(text: dict[str, str]) -> dict[str, dict[str, int]]:
    """SMS segments of each language's text in each letters choice."""
    return {
        lang: {script: sms_segments(in_script(body, script)).segments for script in SCRIPTS}
        for lang, body in text.items()
    }


async def preview(
    db: AsyncSession, flows: FlowSet, settings: Settings, *, text: Mapping[str, str], audience: Audience
) -> Preview:
    """Count the audience now (one grouped query) and price its SMS."""
    checked = checked_text(text)
    contacts = Contact.__table__  # type: ignore[attr-defined]
    lang, channel = text_lang(), outbox_channel()
    groups = await sql.rows(
        db,
        sa.select(channel, lang, contacts.c.script, sa.func.count())
        .where(*conditions(audience, flows))
        .group_by(channel, lang, contacts.c.script),
    )
    segments = segments_of(checked)
    total, sms_segments_total = 0, 0
    for channel_of, lang_of, script, count in groups:
        total += int(count)
        if channel_of == "sms":
            by_script = segments[lang_of]
            sms_segments_total += int(count) * by_script.get(script, by_script["cyrillic"])
    return Preview(total, segments, price_of(sms_segments_total, settings.sms_price_per_segment))


async def create(
    db: AsyncSession,
    vault: Vault,
    flows: FlowSet,
    settings: Settings,
    *,
    staff: Staff,
    text: Mapping[str, str],
    audience: Audience,
    now: datetime,
) -> tuple[Announcement, Preview]:
    """Save a draft and say what sending it would mean."""
    checked = checked_text(text)
    counted = await preview(db, flows, settings, text=checked, audience=audience)
    announcement = Announcement(
        status=DRAFT,
        text_tg=checked["tg"],
        text_ru=checked["ru"],
        audience=json.dumps(audience.to_json(), ensure_ascii=False),
        audience_size=counted.audience,
        created_by=staff.id,
        created_at=now,
    )
    db.add(announcement)
    await db.flush()
    await audit.record(
        db,
        staff=staff,
        action="announcement.create",
        detail=f"announcement {announcement.id}: {counted.audience} women",
        now=now,
    )
    return announcement, counted


async def approve(
    db: AsyncSession, settings: Settings, *, announcement_id: int, staff: Staff, now: datetime
) -> Announcement:
    """A second coordinator agrees that the draft may be sent (never its author)."""
    announcement = await _locked(db, announcement_id)
    if announcement.status != DRAFT:
        raise AnnouncementConflict(f"only a draft can be approved; this one is {announcement.status}")
    if announcement.created_by is not None and announcement.created_by == staff.id:
        raise AnnouncementConflict("a second coordinator must approve it, not its author")
    announcement.status, announcement.approved_by = APPROVED, staff.id
    db.add(announcement)
    await audit.record(
        db, staff=staff, action="announcement.approve", detail=f"announcement {announcement_id}", now=now
    )
    return announcement


async def send(
    db: AsyncSession,
    vault: Vault,
    flows: FlowSet,
    settings: Settings,
    *,
    announcement_id: int,
    staff: Staff,
    at: datetime | None,
    override_reason: str | None,
    now: datetime,
) -> Announcement:
    """Schedule it for `at` (None: now); if that is now, enqueue the whole audience at once.

    A time inside quiet hours needs `override_reason`, which is kept and audited.
    """
    announcement = await _locked(db, announcement_id)
    if announcement.status not in (DRAFT, APPROVED, SCHEDULED):
        raise AnnouncementConflict(f"it cannot be sent: it is {announcement.status}")
    if settings.announce_needs_approval and announcement.approved_by is None:
        raise AnnouncementConflict("a second coordinator must approve it before it is sent")
    when = _checked_time(at, now)
    reason = (override_reason or "").strip() or None
    if reason is not None and len(reason) > MAX_REASON:
        raise AnnouncementInvalid(f"the reason has {len(reason)} characters; at most {MAX_REASON}")
    if in_quiet_hours(settings.announce_quiet_hours, when) and reason is None:
        raise AnnouncementConflict(
            f"{when.astimezone(hours.DUSHANBE):%H:%M} in Dushanbe is inside the quiet hours "
            f"({settings.announce_quiet_hours}): choose another time or give an override_reason"
        )
    announcement.status, announcement.send_at, announcement.override_reason = SCHEDULED, when, reason
    db.add(announcement)
    detail = f"announcement {announcement_id} at {when.astimezone(hours.DUSHANBE):%Y-%m-%d %H:%M} Dushanbe"
    if reason is not None:
        detail += f", in quiet hours: {reason}"
    await audit.record(db, staff=staff, action="announcement.send", detail=detail, now=now)
    if when <= now:
        await enqueue.enqueue(db, vault, flows, announcement, now=now)
    else:  # counted now: who opts out or blocks the bot before its time is "blocked" then
        await enqueue.snapshot(db, flows, announcement, now=now)
    return announcement


async def cancel(db: AsyncSession, *, announcement_id: int, staff: Staff, now: datetime) -> Announcement:
    """Stop what has not left yet: its waiting outbox rows go, and their recipients are "cancelled"."""
    announcement = await _locked(db, announcement_id)
    if announcement.status not in (DRAFT, APPROVED, SCHEDULED, SENDING):
        raise AnnouncementConflict(f"it cannot be cancelled: it is {announcement.status}")
    stopped = await outcomes.cancel_waiting(db, announcement_id=announcement_id, now=now)
    announcement.status, announcement.cancelled_at = CANCELLED, now
    db.add(announcement)
    await audit.record(
        db,
        staff=staff,
        action="announcement.cancel",
        detail=f"announcement {announcement_id}: {stopped} messages stopped",
        now=now,
    )
    return announcement


async def counts(db: AsyncSession, *, announcement_id: int) -> dict[str, int]:
    """Recipients by outcome, each in exactly one bucket (read from the announcement's own table)."""
    if await db.get(Announcement, announcement_id) is None:
        raise AnnouncementNotFound(f"no announcement {announcement_id}")
    return await outcomes.counts(db, announcement_id=announcement_id)


async def listing(db: AsyncSession, *, limit: int = 100) -> list[Announcement]:
    """Announcements, newest first."""
    query = select(Announcement).order_by(col(Announcement.id).desc()).limit(max(1, min(limit, 1000)))
    return list((await db.exec(query)).all())


def in_quiet_hours(quiet: str, when: datetime) -> bool:
    """Whether `when` falls inside the configured quiet hours ("" means there are none)."""
    if not quiet.strip():
        return False
    try:
        window = hours.parse(quiet)
    except hours.HoursError:  # the settings validate it; never block a send on a value they let through
        return False
    return not window.always and window.open_at(when)


def _checked_time(at: datetime | None, now: datetime) -> datetime:
    if at is None:
        return now
    if at.tzinfo is None:
        raise AnnouncementInvalid("the time needs an offset, e.g. 2026-12-01T10:00:00+05:00")
    if at < now - PAST_GRACE:
        raise AnnouncementInvalid("the time is in the past")
    if at > now + LATEST:
        raise AnnouncementInvalid("the time is more than a year ahead")
    return max(at, now)


async def _locked(db: AsyncSession, announcement_id: int) -> Announcement:
    announcement = await db.get(Announcement, announcement_id, with_for_update=True)
    if announcement is None:
        raise AnnouncementNotFound(f"no announcement {announcement_id}")
    return announcement
