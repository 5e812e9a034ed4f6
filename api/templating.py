"""The Jinja2 templates of the staff pages, in one place: every page extends templates/base.html.

Autoescaping is on for .html, so a value is always shown as text, never run as markup. The layout reads who
is logged in from `request.state.login`, which the CurrentStaff dependency sets, so pages need not pass it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

HERE = Path(__file__).parent

# Staff pages load nothing but Hamroh's own files, can be framed by nobody, and are never cached: they show
# cases, and a shared computer's browser cache must not keep them.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _who(request: Request) -> dict[str, Any]:
    """`login` (staff and csrf) and `csrf` for every template: the header and every form need them."""
    login = getattr(request.state, "login", None)
    return {"login": login, "csrf": login.csrf if login is not None else ""}


templates = Jinja2Templates(directory=HERE / "templates", context_processors=[_who])
static_files = StaticFiles(directory=HERE / "static")  # mounted at /static in every mode


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> HTMLResponse:
    """A staff page from its template, with the headers every staff page carries."""
    return templates.TemplateResponse(
        request, name, context or {}, status_code=status_code, headers=PAGE_HEADERS
    )
