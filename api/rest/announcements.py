"""Announcements over the JSON API: write one, see its audience and cost, approve, send or schedule, cancel,
and follow its counts. Thin: each route calls one step of bot.announcements inside the request's unit of
work and turns its refusals into status codes (404, 409, 422), each with its reason."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlmodel.ext.asyncio.session import AsyncSession

from api.coordinate.announce_form import filters_of, staff_names, status_of
from api.coordinate.common import ApiCoordinator
from api.deps import DbDep, HamrohDep, SettingsDep
from api.rest.errors import ApiRoute
from bot.announcements import drafts
from bot.announcements.audience import Audience
from bot.announcements.drafts import AnnouncementError, Preview
from bot.store.announcements import Announcement

AnnouncementId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the announcement's id")]  # int4

REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no valid API token"},
    403: {"description": "only coordinators and admins may announce"},
    404: {"description": "no such announcement"},
    409: {
        "description": "not now: inside quiet hours without an override_reason, the wrong status for this "
        "step, approval needed first, or approving one's own"
    },
    422: {"description": "the request is not valid (empty or over-long text, unknown district, bad time)"},
}
# The steps refuse what is too long and say so; these bounds only stop absurd requests.
LONGEST_TEXT = 20_000
MOST_FILTERS = 500
Key = Annotated[str, Field(min_length=1, max_length=64)]

router = APIRouter(prefix="/announcements", tags=["announcements"], responses=REFUSALS, route_class=ApiRoute)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Texts(_Body):
    """The announcement in Tajik and in Russian: each woman gets hers."""

    tg: Annotated[str, Field(max_length=LONGEST_TEXT)]
    ru: Annotated[str, Field(max_length=LONGEST_TEXT)]


class Filters(_Body):
    """Who receives it: AND across keys, OR within a key; an empty or missing key means everyone who
    subscribed. A woman whose district is unknown matches any region or district."""

    regions: Annotated[list[Key], Field(max_length=MOST_FILTERS)] = []
    districts: Annotated[list[Key], Field(max_length=MOST_FILTERS)] = []
    langs: Annotated[list[Key], Field(max_length=MOST_FILTERS)] = []
    channels: Annotated[list[Key], Field(max_length=MOST_FILTERS)] = []
    topics: Annotated[list[Key], Field(max_length=MOST_FILTERS)] = []
    courses: Annotated[list[Annotated[int, Field(ge=1, le=2**31 - 1)]], Field(max_length=MOST_FILTERS)] = []


class NewAnnouncement(_Body):
    """A draft: nothing is sent until it is sent (or scheduled)."""

    text: Texts
    audience: Filters = Filters()


class Sending(_Body):
    """When to send: now when `at` is left out. Inside quiet hours only with a reason (kept, audited)."""

    at: AwareDatetime | None = Field(default=None, description="ISO 8601 with its offset")
    override_reason: Annotated[str | None, Field(min_length=1, max_length=200)] = None


class Counts(BaseModel):
    """Each recipient in exactly one of the seven: held waits for her safe hours; blocked opted out or became
    unreachable after the audience was counted; in_doubt was being sent when a sender stopped."""

    queued: int = 0
    held: int = 0
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    blocked: int = 0
    in_doubt: int = 0
    cancelled: int = Field(default=0, description="stopped before it left: beside the seven, not among them")


Segments = dict[str, dict[str, int]]


class Created(BaseModel):
    """A new draft, with what sending it would take."""

    id: int
    status: str
    audience: int = Field(description="how many women would receive it now")
    segments: Segments = Field(description="SMS segments per language, in each letters choice")
    estimated_cost: str | None = Field(description="for the SMS recipients; null without a price setting")


class AnnouncementOut(BaseModel):
    """An announcement, its audience, its times and its counts."""

    id: int
    status: str
    text: dict[str, str]
    audience: dict[str, list[Any]] = Field(description="the filters as chosen")
    audience_size: int = Field(description="counted when written, and again when sent")
    created_by: str | None
    approved_by: str | None
    created_at: datetime
    send_at: datetime | None
    enqueued_at: datetime | None
    cancelled_at: datetime | None
    override_reason: str | None
    counts: Counts


class AnnouncementList(BaseModel):
    """The latest announcements first."""

    announcements: list[AnnouncementOut]


@contextmanager
def refusals() -> Iterator[None]:
    """A step's refusal as its HTTP status, with its reason."""
    try:
        yield
    except AnnouncementError as exc:
        raise HTTPException(status_of(exc), exc.reason) from None


@router.post("", status_code=201)
async def create(
    body: NewAnnouncement, staff: ApiCoordinator, hamroh: HamrohDep, settings: SettingsDep, db: DbDep
) -> Created:
    """Write a draft: its audience size, SMS segments and estimated cost come back at once."""
    with refusals():
        audience = Audience.from_json(body.audience.model_dump(), hamroh.flows)
        announcement, preview = await drafts.create(
            db,
            hamroh.vault,
            hamroh.flows,
            settings,
            staff=staff,
            text=body.text.model_dump(),
            audience=audience,
            now=hamroh.clock(),
        )
    await db.flush()
    assert announcement.id is not None
    return created(announcement, preview)


@router.get("")
async def list_announcements(
    staff: ApiCoordinator, db: DbDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> AnnouncementList:
    """The latest announcements, newest first, with their counts."""
    found = await drafts.listing(db, limit=limit)
    names = await staff_names(db, found)
    return AnnouncementList(announcements=[await full(db, a, names) for a in found])


@router.get("/{announcement_id}")
async def get_announcement(
    announcement_id: AnnouncementId, staff: ApiCoordinator, db: DbDep
) -> AnnouncementOut:
    """One announcement: its status and how many were queued, held, sent, delivered, failed, blocked and
    in doubt."""
    return await reread(db, announcement_id)


@router.post("/{announcement_id}/approve")
async def approve(
    announcement_id: AnnouncementId,
    staff: ApiCoordinator,
    hamroh: HamrohDep,
    settings: SettingsDep,
    db: DbDep,
) -> AnnouncementOut:
    """Approve a draft (when approval is on, by a coordinator other than its writer)."""
    with refusals():
        await drafts.approve(db, settings, announcement_id=announcement_id, staff=staff, now=hamroh.clock())
    return await reread(db, announcement_id)


@router.post("/{announcement_id}/send", status_code=202)
async def send(
    announcement_id: AnnouncementId,
    staff: ApiCoordinator,
    hamroh: HamrohDep,
    settings: SettingsDep,
    db: DbDep,
    sending: Annotated[Sending | None, Body()] = None,
) -> AnnouncementOut:
    """Send now, or at `at`; it leaves through the outbox as bulk, at the channels' limits and in each
    woman's safe hours. Inside quiet hours it is refused (409) unless `override_reason` says why."""
    sending = sending or Sending()
    with refusals():
        await drafts.send(
            db,
            hamroh.vault,
            hamroh.flows,
            settings,
            announcement_id=announcement_id,
            staff=staff,
            at=sending.at,
            override_reason=sending.override_reason,
            now=hamroh.clock(),
        )
    return await reread(db, announcement_id)


@router.post("/{announcement_id}/cancel")
async def cancel(
    announcement_id: AnnouncementId, staff: ApiCoordinator, hamroh: HamrohDep, db: DbDep
) -> AnnouncementOut:
    """Cancel: what has not left yet never leaves."""
    with refusals():
        await drafts.cancel(db, announcement_id=announcement_id, staff=staff, now=hamroh.clock())
    return await reread(db, announcement_id)


def created(announcement: Announcement, preview: Preview) -> Created:
    """The answer to a new draft."""
    assert announcement.id is not None
    return Created(
        id=announcement.id,
        status=announcement.status,
        audience=preview.audience,
        segments=preview.segments,
        estimated_cost=preview.estimated_cost,
    )


async def reread(db: AsyncSession, announcement_id: int) -> AnnouncementOut:
    """The announcement as it is now, after a step (404 if there is none)."""
    await db.flush()
    announcement = await db.get(Announcement, announcement_id, populate_existing=True)
    if announcement is None:
        raise HTTPException(404, "no such announcement")
    return await full(db, announcement, await staff_names(db, [announcement]))


async def full(db: AsyncSession, announcement: Announcement, names: Mapping[int, str]) -> AnnouncementOut:
    """An announcement with its counts, as the API shows it."""
    assert announcement.id is not None
    with refusals():
        counts = await drafts.counts(db, announcement_id=announcement.id)
    return AnnouncementOut(
        id=announcement.id,
        status=announcement.status,
        text={"tg": announcement.text_tg, "ru": announcement.text_ru},
        audience=filters_of(announcement),
        audience_size=announcement.audience_size,
        created_by=names.get(announcement.created_by or 0),
        approved_by=names.get(announcement.approved_by or 0),
        created_at=announcement.created_at,
        send_at=announcement.send_at,
        enqueued_at=announcement.enqueued_at,
        cancelled_at=announcement.cancelled_at,
        override_reason=announcement.override_reason,
        counts=Counts.model_validate(counts),
    )
