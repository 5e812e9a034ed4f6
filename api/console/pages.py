"""The console's pages: the queue, one case, and the fragments that keep them live."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.console.common import Handler, page
from api.deps import DbDep, HamrohDep, SettingsDep
from bot.cases import feed, views
from bot.cases.actions import MAX_TEXT, OUTCOMES, OVERSEERS, QUEUES, CaseNotFound
from bot.cases.canned import FILE_NAME, Canned
from bot.cases.cost import sms_cost
from bot.channels.sms import in_script
from bot.config import Settings
from bot.conversation.model import SCRIPTS, Script
from bot.service import Hamroh
from bot.staff import audit
from bot.store import OPEN_STATUSES, Case, Contact, Staff

router = APIRouter(prefix="/console")

TELEGRAM_MAX = 4096
# What the page says after a step went well: looked up, never echoed from the address bar.
DONE = {
    "claimed": "You have this case now. Her messages come to you.",
    "released": "The case is back in its queue.",
    "replied": "Sent.",
    "held": "Saved: it leaves at the start of her safe hours.",
    "noted": "Note added. She never sees notes.",
    "transferred": "Case transferred.",
    "sent_now": "The held messages are leaving now.",
    "safe_hours": "Her safe hours are saved.",
    "closed": "Case closed.",
}
OUTCOME_LABELS = {
    "safety_plan": "Safety plan made",
    "referred": "Referred to a service",
    "information": "Information given",
    "resolved": "Resolved",
    "no_contact": "No contact",
    "other": "Other",
    "erased": "She deleted her data",
    "left": "She left the chat",
}
SCRIPT_LABELS = {"cyrillic": "Cyrillic", "plain": "plain Cyrillic (no Tajik letters)", "latin": "Latin"}
_canned: dict[str, Canned] = {}


@dataclass(frozen=True)
class Abilities:
    """What this member of staff may do to this case now (the actions check again when it is done)."""

    mine: bool
    claim: bool
    write: bool
    manage: bool  # close and transfer
    unmask: bool


@router.get("", response_class=HTMLResponse)
async def queue_page(
    request: Request, staff: Handler, hamroh: HamrohDep, db: DbDep, done: str | None = None
) -> HTMLResponse:
    """Waiting and active cases, urgent first then the longest waiting; it follows the feed by itself."""
    after = await feed.last_event_id(db)  # read before the queue: nothing in between is missed
    cases = await views.list_cases(db, hamroh.vault, now=hamroh.clock())
    return page(
        request,
        "console/queue.html",
        {"cases": cases, "after": after, "staff": staff, "done": DONE.get(done or "")},
    )


@router.get("/queue", response_class=HTMLResponse)
async def queue_fragment(request: Request, staff: Handler, hamroh: HamrohDep, db: DbDep) -> HTMLResponse:
    """The queue alone, for the page to swap in when the feed says something changed."""
    cases = await views.list_cases(db, hamroh.vault, now=hamroh.clock())
    return page(request, "console/_queue.html", {"cases": cases, "staff": staff})


@router.get("/cases/{case_id}", response_class=HTMLResponse)
async def case_page(
    request: Request,
    case_id: int,
    staff: Handler,
    hamroh: HamrohDep,
    settings: SettingsDep,
    db: DbDep,
    done: str | None = None,
) -> HTMLResponse:
    """One case: her words and the staff's, what she read before asking, and what can be done."""
    await audit.record(db, staff=staff, action="viewed", case_id=case_id, now=hamroh.clock())
    return await render_case(request, db, hamroh, settings, staff, case_id, done=DONE.get(done or ""))


@router.get("/cases/{case_id}/live", response_class=HTMLResponse)
async def case_live(
    request: Request,
    case_id: int,
    staff: Handler,
    hamroh: HamrohDep,
    db: DbDep,
    seen: Annotated[str, Query(alias="as", max_length=40)] = "",
) -> HTMLResponse:
    """The case's state and transcript, for the page to swap in when the feed says the case changed."""
    detail = await _detail(db, hamroh, case_id)
    context = await _live_context(db, detail, staff)
    context["stale"] = bool(seen) and seen != context["state"]
    return page(request, "console/_live.html", context)


@router.post("/cases/{case_id}/cost", response_class=HTMLResponse)
async def reply_cost(
    request: Request,
    case_id: int,
    staff: Handler,
    hamroh: HamrohDep,
    settings: SettingsDep,
    db: DbDep,
) -> HTMLResponse:
    """What the reply being typed will cost, in the letters she reads (asked while typing)."""
    form = await request.form()
    text = form.get("text")
    found = (
        await db.exec(
            select(Case.channel, Contact.script)
            .outerjoin(Contact, col(Contact.id) == col(Case.contact_id))
            .where(Case.id == case_id)
        )
    ).first()
    if found is None:
        raise HTTPException(404, "no such case")
    channel, script = found
    cost = cost_line(channel, script, text if isinstance(text, str) else "", settings)
    return page(request, "console/_cost.html", {"cost": cost})


async def render_case(
    request: Request,
    db: AsyncSession,
    hamroh: Hamroh,
    settings: Settings,
    staff: Staff,
    case_id: int,
    *,
    status_code: int = 200,
    done: str | None = None,
    error: str | None = None,
    drafts: dict[str, str] | None = None,
    unmasked: str | None = None,
) -> HTMLResponse:
    """The case page, also after a step that could not be done (with why, and what was typed kept)."""
    detail = await _detail(db, hamroh, case_id)
    drafts = drafts or {}
    replies, canned_problem = _canned_for(settings).read()
    context = await _live_context(db, detail, staff)
    colleagues = [
        s.name
        for s in (await db.exec(select(Staff).where(col(Staff.role).in_(("counsellor", *OVERSEERS))))).all()
        if not s.disabled and s.id != staff.id and s.id != detail.summary.counsellor_id
    ]
    context |= {
        "after": await feed.last_event_id(db),
        "done": done,
        "error": error,
        "drafts": drafts,
        "unmasked": unmasked,
        "canned": replies,
        "canned_problem": canned_problem,
        "colleagues": sorted(colleagues),
        "queues": QUEUES,
        "outcomes": [(o, OUTCOME_LABELS.get(o, o)) for o in OUTCOMES],
        "cost": cost_line(detail.summary.channel, detail.script, drafts.get("reply", ""), settings),
        "max_text": MAX_TEXT,
    }
    return page(request, "console/case.html", context, status_code=status_code)


def cost_line(channel: str, letters: str | None, text: str, settings: Settings) -> dict[str, Any]:
    """What the line under the reply box says: for SMS, segments and price in the letters she reads."""
    too_long = len(text) > MAX_TEXT
    if channel != "sms":
        return {"channel": "telegram", "chars": len(text), "limit": TELEGRAM_MAX, "too_long": too_long}
    script: Script = letters if letters in SCRIPTS else "cyrillic"
    count = sms_cost(text, script, settings.sms_price_per_segment)
    converted = in_script(text, script) if script != "cyrillic" and text.strip() else None
    return {
        "channel": "sms",
        "segments": count.segments,
        "encoding": "Latin letters (GSM-7)" if count.encoding == "gsm7" else "Cyrillic (UCS-2)",
        "chars": count.chars,
        "price": count.price,
        "script": SCRIPT_LABELS.get(script, script),
        "converted": converted if converted != text else None,
        "too_long": too_long,
        "max_text": MAX_TEXT,
    }


async def _detail(db: AsyncSession, hamroh: Hamroh, case_id: int) -> views.CaseDetail:
    try:
        return await views.case_detail(db, hamroh.vault, case_id=case_id)
    except CaseNotFound:
        raise HTTPException(404, "no such case") from None


async def _live_context(db: AsyncSession, detail: views.CaseDetail, staff: Staff) -> dict[str, Any]:
    """What the state and transcript fragment needs: the case, who wrote each line, what may be done."""
    summary = detail.summary
    ids = {line.staff_id for line in detail.messages if line.staff_id is not None}
    names: dict[int, str] = {}
    if ids:
        for member in (await db.exec(select(Staff).where(col(Staff.id).in_(ids)))).all():
            assert member.id is not None
            names[member.id] = member.name
    return {
        "detail": detail,
        "summary": summary,
        "names": names,
        "staff": staff,
        "can": abilities(detail, staff),
        "state": f"{summary.status}-{summary.counsellor_id or 0}",
        "outcome_label": OUTCOME_LABELS.get(detail.outcome or "", detail.outcome),
        "stale": False,
    }


def abilities(detail: views.CaseDetail, staff: Staff) -> Abilities:
    """What the page offers this member of staff (the same rules as bot.cases.actions)."""
    summary = detail.summary
    is_open = summary.status in OPEN_STATUSES and not detail.erased
    mine = summary.status == "active" and summary.counsellor_id == staff.id
    overseer = staff.role in OVERSEERS
    return Abilities(
        mine=mine,
        claim=summary.status == "waiting" and not detail.erased,
        write=mine and is_open,
        manage=is_open and (mine or overseer),
        unmask=not detail.erased
        and (staff.role == "admin" or (staff.role == "supervisor" and summary.priority == "urgent")),
    )


def _canned_for(settings: Settings) -> Canned:
    path = settings.flows_dir / FILE_NAME
    key = str(path)
    if key not in _canned:
        _canned[key] = Canned(path)
    return _canned[key]
