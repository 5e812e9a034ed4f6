"""Cases over the JSON API: list, read, claim, write to her, close, transfer. Thin: each route calls one
step of bot.cases and turns its refusals into status codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path

from api.deps import DbDep, HamrohDep, require_api
from api.rest.errors import ApiRoute
from api.rest.models import Accepted, CaseFull, CaseItem, CaseList, Closing, NewMessage, Status, Transfer
from bot.cases import actions, views
from bot.cases.actions import CaseConflict, CaseError, CaseForbidden, CaseInvalid, CaseNotFound
from bot.staff.audit import record
from bot.store import Staff

CaseWorker = Annotated[Staff, Depends(require_api("counsellor", "supervisor", "admin"))]
CaseId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the case's id")]  # an int4 column

STATUS_OF: dict[type[CaseError], int] = {
    CaseNotFound: 404,
    CaseForbidden: 403,
    CaseConflict: 409,
    CaseInvalid: 422,
}
REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no valid API token"},
    403: {"description": "this role may not work on cases"},
    404: {"description": "no such case"},
    409: {"description": "the case is held by another counsellor, or closed"},
    422: {"description": "the request is not valid; the detail says why"},
}

router = APIRouter(prefix="/cases", tags=["cases"], responses=REFUSALS, route_class=ApiRoute)


@contextmanager
def refusals() -> Iterator[None]:
    """A step's refusal as its HTTP status, with its reason."""
    try:
        yield
    except CaseError as exc:
        raise HTTPException(STATUS_OF.get(type(exc), 409), str(exc)) from None


@router.get("")
async def list_cases(
    staff: CaseWorker, hamroh: HamrohDep, db: DbDep, status: Status | None = None
) -> CaseList:
    """Open cases (or those of one status), urgent first, then the longest waiting."""
    summaries = await views.list_cases(db, hamroh.vault, status=status, now=hamroh.clock())
    return CaseList(cases=[CaseItem.of(s) for s in summaries])


@router.get("/{case_id}")
async def get_case(case_id: CaseId, staff: CaseWorker, hamroh: HamrohDep, db: DbDep) -> CaseFull:
    """One case with its messages and notes. Every reading is audited."""
    with refusals():
        detail = await views.case_detail(db, hamroh.vault, case_id=case_id)
    await record(db, staff=staff, action="viewed", case_id=case_id, detail="api", now=hamroh.clock())
    return CaseFull.of_detail(detail)


@router.post("/{case_id}/claim")
async def claim(case_id: CaseId, staff: CaseWorker, hamroh: HamrohDep, db: DbDep) -> CaseItem:
    """Take a waiting case (409 when another counsellor was first)."""
    now = hamroh.clock()
    with refusals():
        await actions.claim(db, case_id=case_id, staff=staff, now=now)
    return await _summary(db, hamroh, case_id)


@router.post("/{case_id}/messages", status_code=202)
async def write(
    case_id: CaseId, message: NewMessage, staff: CaseWorker, hamroh: HamrohDep, db: DbDep
) -> Accepted:
    """Write to her: queued now, sent on her channel, in her safe hours."""
    with refusals():
        line = await actions.reply(
            db, hamroh.vault, case_id=case_id, staff=staff, text=message.text, now=hamroh.clock()
        )
    await db.flush()
    assert line.id is not None
    return Accepted(id=line.id, at=line.at)


@router.post("/{case_id}/close")
async def close(
    case_id: CaseId, closing: Closing, staff: CaseWorker, hamroh: HamrohDep, db: DbDep
) -> CaseItem:
    """Close a case with its outcome (and a note for colleagues)."""
    with refusals():
        await actions.close(
            db,
            hamroh.vault,
            case_id=case_id,
            staff=staff,
            outcome=closing.outcome,
            note=closing.note,
            now=hamroh.clock(),
        )
    return await _summary(db, hamroh, case_id)


@router.post("/{case_id}/transfer")
async def transfer(
    case_id: CaseId, target: Transfer, staff: CaseWorker, hamroh: HamrohDep, db: DbDep
) -> CaseItem:
    """Hand a case to a colleague by name, or back to a queue."""
    with refusals():
        await actions.transfer(
            db, case_id=case_id, staff=staff, to_staff=target.to, to_queue=target.queue, now=hamroh.clock()
        )
    return await _summary(db, hamroh, case_id)


async def _summary(db: DbDep, hamroh: HamrohDep, case_id: int) -> CaseItem:
    with refusals():
        return CaseItem.of(await views.case_summary(db, hamroh.vault, case_id=case_id, now=hamroh.clock()))
