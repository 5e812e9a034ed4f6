"""The audit log, for admins: who viewed, claimed, wrote in, transferred and closed which case."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from api.console.common import page
from api.deps import DbDep, require
from bot.staff import audit
from bot.store import Staff

router = APIRouter(prefix="/console")
PAGE = 100
Admin = Annotated[Staff, Depends(require("admin"))]


@router.get("/audit", response_class=HTMLResponse)
async def audit_log(
    request: Request,
    db: DbDep,
    staff: Admin,
    before: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    case: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> HTMLResponse:
    """The newest entries first, a page at a time, optionally of one case."""
    entries = await audit.read_log(db, limit=PAGE, before_id=before, case_id=case)
    older = entries[-1].id if len(entries) == PAGE else None
    return page(request, "console/audit.html", {"entries": entries, "older": older, "case": case})
