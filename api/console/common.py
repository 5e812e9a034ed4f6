"""What the console's routes share: who may use it, the listener, page rendering and how times read."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, cast

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from api.deps import require
from api.templating import PAGE_HEADERS, templates
from bot.cases.actions import CaseConflict, CaseError, CaseForbidden, CaseInvalid, CaseNotFound
from bot.cases.listen import Listener
from bot.conversation.hours import DUSHANBE
from bot.store import Staff

# Counsellors work at the console; supervisors and admins too. Coordinators have pages of their own.
Handler = Annotated[Staff, Depends(require("counsellor", "supervisor", "admin"))]

# The staff pages' policy, and the alert chime: audio from Hamroh's own files only.
HEADERS = {
    **PAGE_HEADERS,
    "Content-Security-Policy": PAGE_HEADERS["Content-Security-Policy"] + "; media-src 'self'",
}
STATUS_OF = {CaseNotFound: 404, CaseForbidden: 403, CaseConflict: 409, CaseInvalid: 422}


def get_listener(request: Request) -> Listener:
    """The process's feed listener, made with the app."""
    return cast(Listener, request.app.state.listener)


ListenerDep = Annotated[Listener, Depends(get_listener)]


def page(request: Request, name: str, context: dict[str, Any], *, status_code: int = 200) -> HTMLResponse:
    """A console page or fragment from its template (autoescaped), with the staff pages' headers."""
    return templates.TemplateResponse(
        request, name, {"when": when, "waited": waited, **context}, status_code=status_code, headers=HEADERS
    )


def status_of(error: CaseError) -> int:
    """The HTTP status that says why a step on a case could not be done."""
    return next((code for kind, code in STATUS_OF.items() if isinstance(error, kind)), 400)


def when(moment: datetime | None) -> str:
    """A moment as a counsellor in Dushanbe reads it: "28 Nov 14:05"."""
    if moment is None:
        return ""
    return moment.astimezone(DUSHANBE).strftime("%d %b %H:%M").lstrip("0")


def waited(span: timedelta | None) -> str:
    """How long, roughly: "under a minute", "12 min", "3 h 5 min", "2 days"."""
    if span is None:
        return ""
    minutes = int(span.total_seconds() // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        hours, rest = divmod(minutes, 60)
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    return f"{minutes // (24 * 60)} days"
