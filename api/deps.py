"""Typed dependencies, in one place, for thin routes."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, TypeVar, cast

from fastapi import Depends, HTTPException, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import Settings
from bot.service import Hamroh
from bot.staff.accounts import Role, by_token, check_role
from bot.staff.sessions import Login, find_session
from bot.store import Staff
from bot.store.db import transaction

T = TypeVar("T")


# Async, though they only read app state: FastAPI hands a plain `def` dependency to the thread pool, which
# costs a webhook more CPU than reading the attribute.
async def get_hamroh(request: Request) -> Hamroh:
    """The service built at start-up."""
    return hamroh_of(request)


async def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    return settings_of(request)


def settings_of(request: Request) -> Settings:
    """The settings the app was created with, outside dependency injection."""
    return cast(Settings, request.app.state.settings)


def hamroh_of(request: Request) -> Hamroh:
    """The service built at start-up, outside dependency injection."""
    return cast(Hamroh, request.app.state.hamroh)


HamrohDep = Annotated[Hamroh, Depends(get_hamroh)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


# Staff access. Pages use the session cookie (CurrentStaff, require); the JSON API uses bearer tokens only
# (ApiStaff, require_api), so a browser's cookie can never drive the API and a token never opens a page.

SESSION_COOKIE = "hamroh_staff"
CSRF_FIELD = "csrf"  # the form field every state-changing staff form carries
CSRF_HEADER = "X-CSRF-Token"  # the same token, for htmx requests that send no form
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class LoginRequired(Exception):
    """No live session for a staff page: the app answers with a redirect to /login."""


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    """One unit of work for the request, committed before the answer is sent (rolled back if it raises).

    The login dependencies read through it when a route has it. A route holding it must not open another
    `transaction()` on the same engine: on SQLite the second would wait forever for the first one's lock.
    """
    async with transaction(hamroh_of(request).engine) as db:
        request.state.db = db
        try:
            yield db
        finally:
            del request.state.db


DbDep = Annotated[AsyncSession, Depends(get_db, scope="function")]


async def current_login(request: Request) -> Login:
    """The login of the session cookie (LoginRequired without one); unsafe methods must carry its CSRF token.

    The layout of every staff page reads the login from `request.state.login`.
    """
    hamroh = hamroh_of(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    login = await _in_unit_of_work(request, lambda db: find_session(db, token=token, now=hamroh.clock()))
    if login is None:
        raise LoginRequired
    if request.method not in SAFE_METHODS:
        await _check_csrf(request, login)
    request.state.login = login
    return login


CurrentLogin = Annotated[Login, Depends(current_login)]


async def current_staff(login: CurrentLogin) -> Staff:
    """The logged-in member of staff, any role."""
    return login.staff


CurrentStaff = Annotated[Staff, Depends(current_staff)]


async def api_staff(request: Request) -> Staff:
    """The member of staff whose API token is in `Authorization: Bearer ...`; 401 for none or a dead one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    staff = None
    if scheme.lower() == "bearer" and token.strip():
        staff = await _in_unit_of_work(request, lambda db: by_token(db, token=token.strip()))
    if staff is None:
        raise HTTPException(401, "a valid API token is needed", headers={"WWW-Authenticate": "Bearer"})
    return staff


ApiStaff = Annotated[Staff, Depends(api_staff)]


def require(*roles: Role) -> Callable[[Staff], Awaitable[Staff]]:
    """A page dependency: the logged-in member of staff if their role is one of `roles`, else 403.

    Use as `Annotated[Staff, Depends(require("counsellor", "supervisor", "admin"))]`.
    """
    allowed = _roles(roles)

    async def staff_in_role(staff: CurrentStaff) -> Staff:
        return _allowed(staff, allowed)

    return staff_in_role


def require_api(*roles: Role) -> Callable[[Staff], Awaitable[Staff]]:
    """An API dependency: the token's member of staff if their role is one of `roles`, else 403."""
    allowed = _roles(roles)

    async def api_staff_in_role(staff: ApiStaff) -> Staff:
        return _allowed(staff, allowed)

    return api_staff_in_role


def _roles(roles: tuple[str, ...]) -> frozenset[str]:
    if not roles:
        raise ValueError("name at least one role")
    for role in roles:
        check_role(role)  # a typo here must fail at start-up, not lock everyone out
    return frozenset(roles)


def _allowed(staff: Staff, roles: frozenset[str]) -> Staff:
    if staff.role not in roles:
        raise HTTPException(403, "your role may not do this")
    return staff


async def _check_csrf(request: Request, login: Login) -> None:
    """403 unless the request carries the session's form token (in the form, or in the htmx header)."""
    given = request.headers.get(CSRF_HEADER)
    if given is None and _is_form(request.headers.get("content-type", "")):
        value = (await request.form()).get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if given is None or not hmac.compare_digest(given.encode(), login.csrf.encode()):
        raise HTTPException(403, "this form has expired: reload the page and try again")


def _is_form(content_type: str) -> bool:
    kind = content_type.partition(";")[0].strip().lower()
    return kind in ("application/x-www-form-urlencoded", "multipart/form-data")


async def _in_unit_of_work(request: Request, read: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Read within the request's unit of work if it has begun, else in a short one of its own.

    Never two at once: on SQLite a second transaction would wait forever for the first one's lock.
    """
    db: AsyncSession | None = getattr(request.state, "db", None)
    if db is not None:
        return await read(db)
    async with transaction(hamroh_of(request).engine) as own:
        return await read(own)
