"""The console's forms: each POST does one step on a case (bot.cases.actions) and goes back to a page.

Every form carries the session's CSRF token (checked by the staff dependency before anything runs). A step
that cannot be done shows the case again, saying why, with what was typed kept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.console.common import Handler, status_of
from api.console.pages import render_case
from api.deps import DbDep, HamrohDep, SettingsDep
from bot.cases import actions
from bot.cases.actions import CaseError
from bot.config import Settings
from bot.service import Hamroh
from bot.store import Case, OutboxMessage, Staff

router = APIRouter(prefix="/console/cases/{case_id}")

FORM_TEXT = 20_000  # the actions refuse what is too long, and say so; the form only stops absurd posts
Text = Annotated[str, Form(max_length=FORM_TEXT)]
Short = Annotated[str, Form(max_length=200)]


class Step:
    """One step on a case, done inside a savepoint so that a refused step leaves nothing behind."""

    def __init__(
        self,
        request: Request,
        db: AsyncSession,
        hamroh: Hamroh,
        settings: Settings,
        staff: Staff,
        case_id: int,
    ) -> None:
        self.request, self.db, self.hamroh, self.settings = request, db, hamroh, settings
        self.staff, self.case_id = staff, case_id

    async def run(
        self,
        work: Callable[[], Awaitable[object]],
        *,
        done: str,
        to_queue: bool = False,
        drafts: dict[str, str] | None = None,
    ) -> Response:
        try:
            async with self.db.begin_nested():
                await work()
        except CaseError as exc:
            return await render_case(
                self.request,
                self.db,
                self.hamroh,
                self.settings,
                self.staff,
                self.case_id,
                status_code=status_of(exc),
                error=str(exc),
                drafts=drafts,
            )
        where = f"/console?done={done}" if to_queue else f"/console/cases/{self.case_id}?done={done}"
        return RedirectResponse(where, status_code=303)


def step(
    request: Request, db: DbDep, hamroh: HamrohDep, settings: SettingsDep, staff: Handler, case_id: int
) -> Step:
    """The step's context, for each form's route."""
    return Step(request, db, hamroh, settings, staff, case_id)


StepDep = Annotated[Step, Depends(step)]


@router.post("/claim")
async def claim(s: StepDep) -> Response:
    """Take a waiting case: her next messages come to this counsellor."""
    return await s.run(
        lambda: actions.claim(s.db, case_id=s.case_id, staff=s.staff, now=s.hamroh.clock()), done="claimed"
    )


@router.post("/release")
async def release(s: StepDep) -> Response:
    """Give the case back to its queue."""
    return await s.run(
        lambda: actions.release(s.db, case_id=s.case_id, staff=s.staff, now=s.hamroh.clock()),
        done="released",
        to_queue=True,
    )


@router.post("/reply")
async def reply(s: StepDep, text: Text = "", send_now: Short = "") -> Response:
    """Write to her, on her channel; held for her safe hours unless "send now" is ticked (audited)."""
    now = s.hamroh.clock()
    held = False

    async def work() -> None:
        nonlocal held
        await actions.reply(
            s.db,
            s.hamroh.vault,
            case_id=s.case_id,
            staff=s.staff,
            text=text,
            now=now,
            send_now=bool(send_now),
        )
        held = await _last_held(s.db, s.case_id)

    response = await s.run(work, done="replied", drafts={"reply": text})
    if held and isinstance(response, RedirectResponse):
        return RedirectResponse(f"/console/cases/{s.case_id}?done=held", status_code=303)
    return response


@router.post("/note")
async def note(s: StepDep, text: Text = "") -> Response:
    """An internal note for colleagues: never sent to her."""
    return await s.run(
        lambda: actions.add_note(
            s.db, s.hamroh.vault, case_id=s.case_id, staff=s.staff, text=text, now=s.hamroh.clock()
        ),
        done="noted",
        drafts={"note": text},
    )


@router.post("/transfer")
async def transfer(s: StepDep, to: Short = "") -> Response:
    """Hand the case to a colleague ("person:<name>") or to a queue ("queue:<name>")."""
    kind, _, name = to.partition(":")

    async def work() -> None:
        now = s.hamroh.clock()
        if kind == "person" and name:
            await actions.transfer(s.db, case_id=s.case_id, staff=s.staff, to_staff=name, now=now)
        elif kind == "queue" and name:
            await actions.transfer(s.db, case_id=s.case_id, staff=s.staff, to_queue=name, now=now)
        else:
            raise actions.CaseInvalid("choose a colleague or a queue")

    return await s.run(work, done="transferred", to_queue=True)


@router.post("/send-now")
async def send_now(s: StepDep) -> Response:
    """Let the messages held for her safe hours leave now (the counsellor judged it safe; audited)."""
    return await s.run(
        lambda: actions.send_held_now(s.db, case_id=s.case_id, staff=s.staff, now=s.hamroh.clock()),
        done="sent_now",
    )


@router.post("/safe-hours")
async def safe_hours(s: StepDep, hours: Short = "") -> Response:
    """When it is safe to write to her, as she asked ("18-21", Dushanbe time); empty: any time."""
    return await s.run(
        lambda: actions.set_safe_hours(
            s.db, case_id=s.case_id, staff=s.staff, hours=hours.strip() or None, now=s.hamroh.clock()
        ),
        done="safe_hours",
        drafts={"hours": hours},
    )


@router.post("/close")
async def close(s: StepDep, outcome: Short = "", note: Text = "") -> Response:
    """Close the case with an outcome and a closing note."""
    return await s.run(
        lambda: actions.close(
            s.db,
            s.hamroh.vault,
            case_id=s.case_id,
            staff=s.staff,
            outcome=outcome,
            note=note,
            now=s.hamroh.clock(),
        ),
        done="closed",
        to_queue=True,
        drafts={"close": note},
    )


@router.post("/unmask")
async def unmask(s: StepDep) -> Response:
    """Her full address, shown once on this page (never stored in the page's address); audited."""
    address = ""

    async def work() -> None:
        nonlocal address
        address = await actions.unmask(
            s.db, s.hamroh.vault, case_id=s.case_id, staff=s.staff, now=s.hamroh.clock()
        )

    response = await s.run(work, done="")
    if not address:
        return response
    return await render_case(s.request, s.db, s.hamroh, s.settings, s.staff, s.case_id, unmasked=address)


async def _last_held(db: AsyncSession, case_id: int) -> bool:
    """Whether the message just written waits for her safe hours."""
    contact_id = (await db.exec(select(Case.contact_id).where(Case.id == case_id))).first()
    if contact_id is None:
        return False
    held = await db.exec(
        select(OutboxMessage.held)
        .where(OutboxMessage.contact_id == contact_id)
        .order_by(col(OutboxMessage.id).desc())
        .limit(1)
    )
    return bool(held.first())
