"""The coordinators' announcements page: write one in Tajik and Russian, choose who receives it, see the
audience, SMS segments and cost before sending (live as she types, or with the Preview button without
JavaScript), save it, approve, send now or at a Dushanbe time, cancel, and follow the counts.

Thin: each form calls one step of bot.announcements inside a savepoint, so a refused step leaves nothing
behind and the page says why, with what was typed kept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel.ext.asyncio.session import AsyncSession

from api.coordinate.announce_form import (
    CHANNEL_LABELS,
    COUNT_LABELS,
    LANG_LABELS,
    LONGEST_FIELD,
    SCRIPT_LABELS,
    TOPIC_LABELS,
    Composed,
    chosen_labels,
    course_label,
    courses,
    dushanbe_time,
    filters_of,
    form_field,
    regions,
    staff_names,
    status_of,
)
from api.coordinate.common import Coordinator, page
from api.deps import DbDep, HamrohDep, SettingsDep
from bot.announcements import drafts
from bot.announcements.audience import CHANNELS, LANGS, Audience
from bot.announcements.drafts import (
    AnnouncementConflict,
    AnnouncementError,
    Preview,
    in_quiet_hours,
)
from bot.config import Settings
from bot.conversation.hours import DUSHANBE
from bot.service import Hamroh
from bot.store import Staff
from bot.store.announcements import NEWS_TOPICS, Announcement

router = APIRouter(prefix="/coordinate/announcements")

AnnouncementId = Path(ge=1, le=2**31 - 1)
LIVE = frozenset({"scheduled", "sending"})  # counts still move: the page asks again every few seconds
SENDABLE = frozenset({"draft", "approved", "scheduled"})  # a scheduled one may be sent now or moved
CANCELLABLE = frozenset({"draft", "approved", "scheduled", "sending"})
# What the page says after a step went well: looked up, never echoed from the address bar.
DONE = {
    "saved": "Draft saved. Nothing has been sent.",
    "approved": "Approved.",
    "sending": "Sending: it leaves through the outbox at the channels' limits, in each woman's safe hours.",
    "scheduled": "Scheduled.",
    "cancelled": "Cancelled: what had not left will not leave.",
}


@router.get("", response_class=HTMLResponse)
async def announcements_page(
    request: Request,
    staff: Coordinator,
    hamroh: HamrohDep,
    settings: SettingsDep,
    db: DbDep,
    done: str | None = None,
) -> HTMLResponse:
    """A new announcement to write, and the latest ones with their counts."""
    return await _compose_page(request, db, hamroh, settings, Composed(), done=DONE.get(done or ""))


@router.post("/preview", response_class=HTMLResponse)
async def preview(
    request: Request, staff: Coordinator, hamroh: HamrohDep, settings: SettingsDep, db: DbDep
) -> HTMLResponse:
    """Audience, segments and cost of what is being written: the box alone for htmx, else the whole page."""
    composed = Composed.of(await request.form())
    shown = await _preview(db, hamroh, settings, composed)
    if request.headers.get("HX-Request") == "true":
        context = {**shown, "script_labels": SCRIPT_LABELS, "lang_labels": LANG_LABELS}
        return page(request, "coordinate/announcements_preview.html", context)
    return await _compose_page(request, db, hamroh, settings, composed, shown=shown)


@router.post("", response_class=HTMLResponse)
async def save(
    request: Request, staff: Coordinator, hamroh: HamrohDep, settings: SettingsDep, db: DbDep
) -> Response:
    """Save the draft (nothing is sent yet) and go to its page, where it is sent or scheduled."""
    composed = Composed.of(await request.form())
    try:
        async with db.begin_nested():
            announcement, _ = await drafts.create(
                db,
                hamroh.vault,
                hamroh.flows,
                settings,
                staff=staff,
                text=composed.text,
                audience=composed.audience(hamroh.flows),
                now=hamroh.clock(),
            )
            await db.flush()
    except AnnouncementError as exc:
        return await _compose_page(
            request, db, hamroh, settings, composed, error=exc.reason, status_code=status_of(exc)
        )
    return RedirectResponse(f"/coordinate/announcements/{announcement.id}?done=saved", status_code=303)


@router.get("/list", response_class=HTMLResponse)
async def list_fragment(request: Request, staff: Coordinator, db: DbDep) -> HTMLResponse:
    """The list alone, for the page to ask again while any announcement is sending."""
    return page(request, "coordinate/announcements_list.html", await _listing(db))


@router.get("/{announcement_id}", response_class=HTMLResponse)
async def one_page(
    request: Request,
    staff: Coordinator,
    hamroh: HamrohDep,
    settings: SettingsDep,
    db: DbDep,
    announcement_id: int = AnnouncementId,
    done: str | None = None,
) -> HTMLResponse:
    """One announcement: its texts, audience and cost, what can be done with it, and its counts."""
    return await _one(request, db, hamroh, settings, staff, announcement_id, done=DONE.get(done or ""))


@router.get("/{announcement_id}/counts", response_class=HTMLResponse)
async def counts_fragment(
    request: Request, staff: Coordinator, db: DbDep, announcement_id: int = AnnouncementId
) -> HTMLResponse:
    """The status and counts alone, for the page to ask again while it is sending."""
    announcement = await _get(db, announcement_id)
    counts = await drafts.counts(db, announcement_id=announcement_id)
    return page(
        request,
        "coordinate/announcements_counts.html",
        {
            "a": announcement,
            "counts": counts,
            "count_labels": COUNT_LABELS,
            "live": LIVE,
            "cancellable": CANCELLABLE,
        },
    )


@router.post("/{announcement_id}/send", response_class=HTMLResponse)
async def send(
    request: Request,
    staff: Coordinator,
    hamroh: HamrohDep,
    settings: SettingsDep,
    db: DbDep,
    announcement_id: int = AnnouncementId,
) -> Response:
    """Send now, or at a time read as Dushanbe time; inside quiet hours only with a reason."""
    form = await request.form()
    sending = {
        "when": "at" if form_field(form, "when") == "at" else "now",
        "at": form_field(form, "at"),
        "override_reason": form_field(form, "override_reason").strip(),
    }
    now = hamroh.clock()
    quiet = False

    async def work() -> None:
        nonlocal quiet
        at = dushanbe_time(sending["at"]) if sending["when"] == "at" else None
        quiet = in_quiet_hours(settings.announce_quiet_hours, at or now)
        await drafts.send(
            db,
            hamroh.vault,
            hamroh.flows,
            settings,
            announcement_id=announcement_id,
            staff=staff,
            at=at,
            override_reason=sending["override_reason"] or None,
            now=now,
        )

    done = "scheduled" if sending["when"] == "at" else "sending"
    return await _step(
        request,
        db,
        hamroh,
        settings,
        staff,
        announcement_id,
        work,
        done=done,
        sending=sending,
        offer_override=lambda exc: isinstance(exc, AnnouncementConflict) and quiet,
    )


@router.post("/{announcement_id}/approve", response_class=HTMLResponse)
async def approve(
    request: Request,
    staff: Coordinator,
    hamroh: HamrohDep,
    settings: SettingsDep,
    db: DbDep,
    announcement_id: int = AnnouncementId,
) -> Response:
    """Approve it for sending (by a coordinator other than its writer, when approval is on)."""

    async def work() -> None:
        await drafts.approve(db, settings, announcement_id=announcement_id, staff=staff, now=hamroh.clock())

    return await _step(request, db, hamroh, settings, staff, announcement_id, work, done="approved")


@router.post("/{announcement_id}/cancel", response_class=HTMLResponse)
async def cancel(
    request: Request,
    staff: Coordinator,
    hamroh: HamrohDep,
    settings: SettingsDep,
    db: DbDep,
    announcement_id: int = AnnouncementId,
) -> Response:
    """Cancel it: what has not left yet never leaves."""

    async def work() -> None:
        await drafts.cancel(db, announcement_id=announcement_id, staff=staff, now=hamroh.clock())

    return await _step(request, db, hamroh, settings, staff, announcement_id, work, done="cancelled")


async def _step(
    request: Request,
    db: AsyncSession,
    hamroh: Hamroh,
    settings: Settings,
    staff: Staff,
    announcement_id: int,
    work: Callable[[], Awaitable[None]],
    *,
    done: str,
    sending: dict[str, str] | None = None,
    offer_override: Callable[[AnnouncementError], bool] = lambda exc: False,
) -> Response:
    """Do one step in a savepoint: back to the page when it went well, or the page with why it did not
    (with a field for a reason when `offer_override` says the refusal was the quiet hours)."""
    try:
        async with db.begin_nested():
            await work()
    except AnnouncementError as exc:
        return await _one(
            request,
            db,
            hamroh,
            settings,
            staff,
            announcement_id,
            error=exc.reason,
            override=offer_override(exc),
            sending=sending,
            status_code=status_of(exc),
        )
    return RedirectResponse(f"/coordinate/announcements/{announcement_id}?done={done}", status_code=303)


async def _one(
    request: Request,
    db: AsyncSession,
    hamroh: Hamroh,
    settings: Settings,
    staff: Staff,
    announcement_id: int,
    *,
    done: str | None = None,
    error: str | None = None,
    override: bool = False,
    sending: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    announcement = await _get(db, announcement_id)
    filters = filters_of(announcement)
    text = {"tg": announcement.text_tg, "ru": announcement.text_ru}
    shown: Preview | None = None
    problem = None
    try:
        audience = Audience.from_json(filters, hamroh.flows)
        shown = await drafts.preview(db, hamroh.flows, settings, text=text, audience=audience)
    except AnnouncementError as exc:
        problem = exc.reason  # e.g. a district the content no longer has
    needs_approval = settings.announce_needs_approval
    context = {
        "a": announcement,
        "text": text,
        "chosen": chosen_labels(filters, hamroh.flows, await courses(db)),
        "names": await staff_names(db, [announcement]),
        "preview": shown,
        "preview_error": problem,
        "missing": [],
        "counts": await drafts.counts(db, announcement_id=announcement_id),
        "count_labels": COUNT_LABELS,
        "live": LIVE,
        "done": done,
        "error": error,
        "override": override,
        "sending": sending or {"when": "now", "at": "", "override_reason": ""},
        "quiet_hours": settings.announce_quiet_hours,
        "can_send": announcement.status in SENDABLE
        and (not needs_approval or announcement.approved_by is not None),
        "can_approve": needs_approval and announcement.status == "draft",
        "own": announcement.created_by == staff.id,
        "cancellable": CANCELLABLE,
        "today": hamroh.clock().astimezone(DUSHANBE).strftime("%Y-%m-%dT%H:%M"),
        "script_labels": SCRIPT_LABELS,
        "lang_labels": LANG_LABELS,
    }
    return page(request, "coordinate/announcements_one.html", context, status_code=status_code)


async def _compose_page(
    request: Request,
    db: AsyncSession,
    hamroh: Hamroh,
    settings: Settings,
    composed: Composed,
    *,
    shown: dict[str, Any] | None = None,
    error: str | None = None,
    done: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    context = {
        **(shown or await _preview(db, hamroh, settings, composed)),
        "composed": composed,
        "error": error,
        "done": done,
        "regions": regions(hamroh.flows, composed),
        "langs": [(k, LANG_LABELS.get(k, k)) for k in LANGS],
        "channels": [(k, CHANNEL_LABELS.get(k, k)) for k in CHANNELS],
        "topics": [(t, TOPIC_LABELS.get(t, t)) for t in NEWS_TOPICS],
        "courses": [(c.id, course_label(c)) for c in await courses(db)],
        "script_labels": SCRIPT_LABELS,
        "lang_labels": LANG_LABELS,
        "longest": LONGEST_FIELD,
        **await _listing(db),
    }
    return page(request, "coordinate/announcements.html", context, status_code=status_code)


async def _preview(
    db: AsyncSession, hamroh: Hamroh, settings: Settings, composed: Composed
) -> dict[str, Any]:
    """What sending this would take, or why it cannot be counted (a preview writes nothing).

    The audience counts before a word is written: a text not yet written stands in as one letter, and
    its segments (and so the cost) are left out until it is.
    """
    missing = [lang for lang, body in composed.text.items() if not body.strip()]
    text = {lang: body if body.strip() else "-" for lang, body in composed.text.items()}
    try:
        shown = await drafts.preview(
            db, hamroh.flows, settings, text=text, audience=composed.audience(hamroh.flows)
        )
    except AnnouncementError as exc:
        return {"preview": None, "preview_error": exc.reason, "missing": missing}
    return {"preview": shown, "preview_error": None, "missing": missing}


async def _listing(db: AsyncSession) -> dict[str, Any]:
    found = await drafts.listing(db)
    rows = [(a, await drafts.counts(db, announcement_id=a.id)) for a in found if a.id is not None]
    return {
        "announcements": rows,
        "names": await staff_names(db, found),
        "any_live": any(a.status in LIVE for a in found),
        "count_labels": COUNT_LABELS,
        "live": LIVE,
    }


async def _get(db: AsyncSession, announcement_id: int) -> Announcement:
    announcement = await db.get(Announcement, announcement_id, populate_existing=True)
    if announcement is None:
        raise HTTPException(404, "no such announcement")
    return announcement
