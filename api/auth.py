"""Staff login and logout: GET and POST /login, POST /logout. In every mode, development and production."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from api.deps import SESSION_COOKIE, CurrentLogin, DbDep, HamrohDep, LoginRequired, SettingsDep
from api.templating import render
from bot.config import Settings
from bot.staff.login import LoggedIn, Throttled, log_in, log_out
from bot.staff.passwords import MAX_LENGTH
from bot.staff.sessions import find_session

LOGIN_PATH = "/login"
HOMES = {"coordinator": "/coordinate"}  # every other role works at the console
CONSOLE = "/console"

router = APIRouter()


def home_for(role: str) -> str:
    """Where a member of staff lands after logging in."""
    return HOMES.get(role, CONSOLE)


@router.get(LOGIN_PATH)
async def login_page(request: Request, hamroh: HamrohDep, db: DbDep) -> Response:
    """The login form; someone already logged in goes straight to their page."""
    login = await find_session(db, token=request.cookies.get(SESSION_COOKIE, ""), now=hamroh.clock())
    if login is not None:
        return RedirectResponse(home_for(login.staff.role), status_code=303)
    return render(request, "login.html")


@router.post(LOGIN_PATH)
async def login(
    request: Request,
    hamroh: HamrohDep,
    settings: SettingsDep,
    db: DbDep,
    name: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=MAX_LENGTH)] = "",
) -> Response:
    """Check the name and password: 303 to the staff member's page with a session cookie, or the form again.

    A wrong name and a wrong password get the same answer (401), so the form never tells which names exist;
    too many failures get 429 and say for how long.
    """
    now = hamroh.clock()
    address = request.client.host if request.client else "unknown"
    result = await log_in(
        db, name=name, password=password, address=address, keyed_hash=hamroh.vault.fingerprint, now=now
    )
    if isinstance(result, LoggedIn):
        response = RedirectResponse(home_for(result.staff.role), status_code=303)
        max_age = max(1, int((result.expires_at - now).total_seconds()))
        _set_cookie(response, settings, result.token, max_age=max_age)
        return response
    if isinstance(result, Throttled):
        seconds = max(1, math.ceil((result.until - now).total_seconds()))
        context = {"throttled_minutes": math.ceil(seconds / 60), "name": name}
        page = render(request, "login.html", context, status_code=429)
        page.headers["Retry-After"] = str(seconds)
        return page
    return render(request, "login.html", {"refused": True, "name": name}, status_code=401)


@router.post("/logout")
async def logout(
    request: Request, login: CurrentLogin, hamroh: HamrohDep, settings: SettingsDep, db: DbDep
) -> Response:
    """End this browser's session and go to the login form (CurrentLogin checks the form's CSRF token)."""
    await log_out(db, token=request.cookies.get(SESSION_COOKIE, ""), now=hamroh.clock())
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    _set_cookie(response, settings, "", max_age=0)
    return response


async def to_login(request: Request, exc: Exception) -> Response:
    """The app's answer to LoginRequired: 303 to the login form (htmx is told to load it as a whole page)."""
    assert isinstance(exc, LoginRequired)
    if request.headers.get("HX-Request") == "true":
        # htmx would otherwise follow the redirect and put the login form inside a fragment of the page.
        return Response(status_code=401, headers={"HX-Redirect": LOGIN_PATH})
    return RedirectResponse(LOGIN_PATH, status_code=303)


def _set_cookie(response: Response, settings: Settings, token: str, *, max_age: int) -> None:
    # HttpOnly: no script reads it. SameSite=Strict: no other site's page sends it, which also stops
    # cross-site form posts. Secure whenever Hamroh is served over https.
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=(settings.public_url or "").startswith("https://"),
    )
