"""What the coordinators' routes share: who may use them, and page rendering."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse

from api.console.common import when
from api.deps import require, require_api
from api.templating import PAGE_HEADERS, templates
from bot.store import Staff

# Coordinators, and admins who stand in for them. Counsellors get 403: the queue is their work.
Coordinator = Annotated[Staff, Depends(require("coordinator", "admin"))]
ApiCoordinator = Annotated[Staff, Depends(require_api("coordinator", "admin"))]


def page(request: Request, name: str, context: dict[str, Any], *, status_code: int = 200) -> HTMLResponse:
    """A coordinator's page or fragment from its template (autoescaped), with the staff pages' headers."""
    return templates.TemplateResponse(
        request, name, {"when": when, **context}, status_code=status_code, headers=PAGE_HEADERS
    )
