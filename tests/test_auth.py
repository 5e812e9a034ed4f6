"""Staff login on the web: the form, the session cookie, CSRF, roles, bearer tokens, and throttling."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse
from sqlmodel import col, select

from api.app import create_app
from api.deps import SESSION_COOKIE, ApiStaff, CurrentStaff, DbDep, require, require_api
from api.templating import render
from bot.config import Settings
from bot.conversation.flows import FlowSet
from bot.service import Hamroh
from bot.staff import accounts, audit
from bot.staff.errors import BadRole
from bot.store import AuditEntry, Staff, StaffSession
from bot.store.crypto import Vault
from bot.store.db import create_engine, transaction
from tests.conftest import Clock, Tokens, settings_for_tests

BASE = "http://hamroh.test"
PASSWORD = "correct horse battery"
WRONG = "not the password at all"
CSRF_INPUT = re.compile(r'name="csrf" value="([^"]*)"')
REFUSED = "Wrong name or password."


def staff_settings(database_url: str, tmp_path: Path, **extra: Any) -> Settings:
    return settings_for_tests(tmp_path, database_url, **extra)


async def add_staff(hamroh: Hamroh, name: str, role: str, password: str = PASSWORD) -> None:
    async with transaction(hamroh.engine) as db:
        await accounts.add_staff(db, name=name, role=role, password=password, now=hamroh.clock())


async def issue_token(hamroh: Hamroh, name: str) -> str:
    async with transaction(hamroh.engine) as db:
        return await accounts.issue_token(db, name=name, now=hamroh.clock())


@asynccontextmanager
async def browser(app: FastAPI, *, address: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    """A client that keeps cookies, as a browser does, from one client address."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=BASE) as client,
    ):
        yield client


async def log_in(client: httpx.AsyncClient, name: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/login", data={"name": name, "password": password})


# Routes of the tests' own, to exercise the dependencies every staff page and API route uses.
probe = APIRouter()


@probe.get("/probe/page")
async def probe_page(request: Request, staff: CurrentStaff) -> HTMLResponse:
    return render(request, "base.html")


@probe.get("/probe/counselling")
async def probe_counselling(
    staff: Annotated[Staff, Depends(require("counsellor", "supervisor"))],
) -> dict[str, str]:
    return {"name": staff.name}


@probe.post("/probe/form")
async def probe_form(staff: CurrentStaff) -> dict[str, str]:
    return {"name": staff.name}


@probe.post("/probe/unit-first")
async def probe_unit_first(db: DbDep, staff: CurrentStaff) -> dict[str, str]:
    """The unit of work is asked for before the login: both must share it (SQLite would wait forever)."""
    await audit.record(db, staff=staff, action="probed", now=staff.created_at)
    return {"name": staff.name}


@probe.get("/api/probe")
async def probe_api(staff: ApiStaff) -> dict[str, str]:
    return {"name": staff.name, "role": staff.role}


@probe.get("/api/probe/admin")
async def probe_api_admin(staff: Annotated[Staff, Depends(require_api("admin"))]) -> dict[str, str]:
    return {"name": staff.name}


@pytest.fixture
def app(small_hamroh: Hamroh, database_url: str, tmp_path: Path) -> FastAPI:
    app = create_app(staff_settings(database_url, tmp_path), small_hamroh)
    app.include_router(probe)
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(app) as client:
        yield client


async def csrf_of(client: httpx.AsyncClient) -> str:
    """The form token, as a page of the logged-in browser shows it."""
    page = await client.get("/probe/page")
    assert page.status_code == 200, page.text
    match = CSRF_INPUT.search(page.text)
    assert match is not None
    return match.group(1)


# The login form


async def test_the_login_form_loads_nothing_from_elsewhere_and_is_never_cached(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/login")
    assert page.status_code == 200
    assert '<form method="post" action="/login"' in page.text
    assert 'type="password"' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "http" not in re.sub(r'href="/static/[^"]+"', "", page.text.split("<body>")[0])
    css = await client.get("/static/staff.css")
    assert css.status_code == 200
    assert "http" not in css.text


@pytest.mark.parametrize(
    ("role", "home"),
    [
        ("counsellor", "/console"),
        ("supervisor", "/console"),
        ("admin", "/console"),
        ("coordinator", "/coordinate"),
    ],
)
async def test_logging_in_sets_a_strict_http_only_cookie_and_opens_the_roles_page(
    small_hamroh: Hamroh, client: httpx.AsyncClient, role: str, home: str
) -> None:
    await add_staff(small_hamroh, "dilnoza", role)
    response = await log_in(client, "dilnoza")
    assert (response.status_code, response.headers["location"]) == (303, home)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Max-Age=43200" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # served over http: a Secure cookie would never come back
    assert (await client.get("/probe/page")).status_code == 200


async def test_the_cookie_is_secure_when_hamroh_is_served_over_https(
    small_hamroh: Hamroh, database_url: str, tmp_path: Path
) -> None:
    await add_staff(small_hamroh, "dilnoza", "counsellor")
    settings = staff_settings(database_url, tmp_path, public_url="https://hamroh.example.org")
    async with browser(create_app(settings, small_hamroh)) as client:
        response = await log_in(client, "dilnoza")
    assert response.status_code == 303
    assert "; Secure" in response.headers["set-cookie"]


async def test_the_cookie_holds_a_token_the_database_keeps_only_as_a_digest(
    small_hamroh: Hamroh, client: httpx.AsyncClient
) -> None:
    await add_staff(small_hamroh, "dilnoza", "counsellor")
    await log_in(client, "dilnoza")
    token = client.cookies[SESSION_COOKIE]
    async with transaction(small_hamroh.engine) as db:
        (session,) = (await db.exec(select(StaffSession))).all()
    assert session.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert session.csrf != token


async def test_a_wrong_password_and_an_unknown_name_get_the_same_answer(
    small_hamroh: Hamroh, client: httpx.AsyncClient
) -> None:
    await add_staff(small_hamroh, "dilnoza", "counsellor")
    wrong = await log_in(client, "dilnoza", WRONG)
    unknown = await log_in(client, "rustam", WRONG)
    assert wrong.status_code == unknown.status_code == 401
    assert REFUSED in wrong.text
    assert wrong.text.replace("dilnoza", "NAME") == unknown.text.replace("rustam", "NAME")
    assert SESSION_COOKIE not in wrong.headers.get("set-cookie", "")
    assert WRONG not in wrong.text


async def test_a_disabled_account_cannot_log_in(small_hamroh: Hamroh, client: httpx.AsyncClient) -> None:
    await add_staff(small_hamroh, "dilnoza", "counsellor")
    async with transaction(small_hamroh.engine) as db:
        await accounts.disable_staff(db, name="dilnoza")
    response = await log_in(client, "dilnoza")
    assert response.status_code == 401
    assert REFUSED in response.text


async def test_the_login_form_sends_a_logged_in_browser_to_its_page(
    small_hamroh: Hamroh, client: httpx.AsyncClient
) -> None:
    await add_staff(small_hamroh, "zarina", "coordinator")
    await log_in(client, "zarina")
    response = await client.get("/login")
    assert (response.status_code, response.headers["location"]) == (303, "/coordinate")


# Pages need a login


async def test_a_page_sends_an_anonymous_browser_to_the_login_form(client: httpx.AsyncClient) -> None:
    response = await client.get("/probe/page")
    assert (response.status_code, response.headers["location"]) == (303, "/login")
    forged = await client.get("/probe/page", headers={"cookie": f"{SESSION_COOKIE}=forged"})
    assert (forged.status_code, forged.headers["location"]) == (303, "/login")


async def test_htmx_is_told_to_load_the_login_form_as_a_whole_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/probe/page", headers={"HX-Request": "true"})
    assert (response.status_code, response.headers["hx-redirect"]) == (401, "/login")


async def test_the_layout_shows_who_is_logged_in_as_text(
    small_hamroh: Hamroh, client: httpx.AsyncClient
) -> None:
    await add_staff(small_hamroh, "<b>Dilnoza</b>", "supervisor")
    await log_in(client, "<b>Dilnoza</b>")
    page = await client.get("/probe/page")
    assert "&lt;b&gt;Dilnoza&lt;/b&gt;" in page.text
    assert "<b>Dilnoza</b>" not in page.text
    assert "supervisor" in page.text
    assert '<form method="post" action="/logout"' in page.text
    assert page.headers["cache-control"] == "no-store"


async def test_a_session_ends_after_twelve_hours(
    small_hamroh: Hamroh, client: httpx.AsyncClient, clock: Clock
) -> None:
    await add_staff(small_hamroh, "dilnoza", "counsellor")
    await log_in(client, "dilnoza")
    clock.advance(hours=11, minutes=59)
    assert (await client.get("/probe/page")).status_code == 200
    clock.advance(minutes=1)
    assert (await client.get("/probe/page")).status_code == 303


async def test_disabling_an_account_logs_it_out_at_once(
    small_hamroh: Hamroh, client: httpx.AsyncClient
) -> None:
    await add_staff(small_hamroh, "dilnoza", "counsellor")
    await log_in(client, "dilnoza")
    async with transaction(small_hamroh.engine) as db:
        await accounts.disable_staff(db, name="dilnoza")
    assert (await client.get("/probe/page")).status_code == 303


async def test_a_role_that_may_not_gets_403(small_hamroh: Hamroh, app: FastAPI) -> None:
    await add_staff(small_hamroh, "dilnoza", "counsellor")
    await add_staff(small_hamroh, "zarina", "coordinator")
    async with browser(app) as counsellor, browser(app) as coordinator:
        await log_in(counsellor, "dilnoza")
        await log_in(coordinator, "zarina")
        assert (await counsellor.get("/probe/counselling")).json() == {"name": "dilnoza"}
        assert (await coordinator.get("/probe/counselling")).status_code == 403


def test_a_role_hamroh_does_not_know_fails_at_start_up() -> None:
    with pytest.raises(BadRole, match="unknown role 'counselor'"):
        require("counselor")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one role"):
        require()


# CSRF


async def test_a_state_changing_form_needs_its_sessions_token(small_hamroh: Hamroh, app: FastAPI) -> None:
    await add_staff(small_hamroh, "dilnoza", "counsellor")
    await add_staff(small_hamroh, "rustam", "counsellor")
    async with browser(app) as mine, browser(app) as theirs:
        await log_in(mine, "dilnoza")
        await log_in(theirs, "rustam")
        csrf, other = await csrf_of(mine), await csrf_of(theirs)
        assert (await mine.post("/probe/form")).status_code == 403
        assert (await mine.post("/probe/form", data={"note": "x"})).status_code == 403
        assert (await mine.post("/probe/form", data={"csrf": other})).status_code == 403
        assert (await mine.post("/probe/form", data={"csrf": ""})).status_code == 403
        assert (await mine.post("/probe/form", json={"csrf": csrf})).status_code == 403  # only forms carry it
        assert (await mine.post("/probe/form", data={"csrf": csrf})).json() == {"name": "dilnoza"}
        assert (await mine.post("/probe/form", files={"csrf": (None, csrf)})).status_code == 200
        assert (await mine.post("/probe/form", headers={"X-CSRF-Token": csrf})).status_code == 200


async def test_logout_needs_the_form_token_and_ends_the_session(
    small_hamroh: Hamroh, client: httpx.AsyncClient
) -> None:
    await add_staff(small_hamroh, "dilnoza", "counsellor")
    await log_in(client, "dilnoza")
    csrf = await csrf_of(client)
    assert (await client.post("/logout")).status_code == 403
    assert (await client.post("/logout", data={"csrf": "guess"})).status_code == 403
    assert (await client.get("/probe/page")).status_code == 200

    response = await client.post("/logout", data={"csrf": csrf})
    assert (response.status_code, response.headers["location"]) == (303, "/login")
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert (await client.get("/probe/page")).status_code == 303
    async with transaction(small_hamroh.engine) as db:
        assert (await db.exec(select(StaffSession))).all() == []
        actions = [e.action for e in (await db.exec(select(AuditEntry).order_by(col(AuditEntry.id)))).all()]
    assert actions == ["login", "logout"]


async def test_a_route_may_ask_for_the_unit_of_work_before_the_login(
    small_hamroh: Hamroh, client: httpx.AsyncClient
) -> None:
    await add_staff(small_hamroh, "dilnoza", "counsellor")
    await log_in(client, "dilnoza")
    csrf = await csrf_of(client)
    response = await client.post("/probe/unit-first", data={"csrf": csrf})
    assert response.json() == {"name": "dilnoza"}
    async with transaction(small_hamroh.engine) as db:
        assert (await db.exec(select(AuditEntry).where(AuditEntry.action == "probed"))).one()


# Bearer tokens


async def test_the_api_takes_a_bearer_token_and_nothing_else(
    small_hamroh: Hamroh, client: httpx.AsyncClient
) -> None:
    await add_staff(small_hamroh, "dilnoza", "counsellor")
    token = await issue_token(small_hamroh, "dilnoza")

    ok = await client.get("/api/probe", headers={"Authorization": f"Bearer {token}"})
    assert ok.json() == {"name": "dilnoza", "role": "counsellor"}
    assert (await client.get("/api/probe", headers={"Authorization": f"bearer {token}"})).status_code == 200

    for headers in (
        {},
        {"Authorization": token},
        {"Authorization": f"Basic {token}"},
        {"Authorization": "Bearer x"},
    ):
        refused = await client.get("/api/probe", headers=headers)
        assert refused.status_code == 401, headers
        assert refused.headers["www-authenticate"] == "Bearer"

    await log_in(client, "dilnoza")  # a browser's session cookie never opens the API ...
    assert (await client.get("/api/probe")).status_code == 401
    client.cookies.clear()  # ... and a token never opens a page
    page = await client.get("/probe/page", headers={"Authorization": f"Bearer {token}"})
    assert (page.status_code, page.headers["location"]) == (303, "/login")


async def test_a_replaced_revoked_or_disabled_token_gets_401(
    small_hamroh: Hamroh, client: httpx.AsyncClient
) -> None:
    await add_staff(small_hamroh, "dilnoza", "counsellor")
    first = await issue_token(small_hamroh, "dilnoza")
    second = await issue_token(small_hamroh, "dilnoza")

    async def status(token: str) -> int:
        return (await client.get("/api/probe", headers={"Authorization": f"Bearer {token}"})).status_code

    assert (await status(first), await status(second)) == (401, 200)
    async with transaction(small_hamroh.engine) as db:
        await accounts.revoke_token(db, name="dilnoza")
    assert await status(second) == 401
    third = await issue_token(small_hamroh, "dilnoza")
    assert await status(third) == 200
    async with transaction(small_hamroh.engine) as db:
        await accounts.disable_staff(db, name="dilnoza")
    assert await status(third) == 401


async def test_an_api_role_that_may_not_gets_403(small_hamroh: Hamroh, client: httpx.AsyncClient) -> None:
    await add_staff(small_hamroh, "dilnoza", "counsellor")
    await add_staff(small_hamroh, "aziz", "admin")
    counsellor, admin = await issue_token(small_hamroh, "dilnoza"), await issue_token(small_hamroh, "aziz")
    assert (
        await client.get("/api/probe/admin", headers={"Authorization": f"Bearer {counsellor}"})
    ).status_code == 403
    assert (
        await client.get("/api/probe/admin", headers={"Authorization": f"Bearer {admin}"})
    ).status_code == 200


# Throttling


async def test_throttling_holds_across_two_app_processes_on_one_database(
    small_hamroh: Hamroh,
    database_url: str,
    tmp_path: Path,
    small_flows: FlowSet,
    vault: Vault,
    clock: Clock,
) -> None:
    await add_staff(small_hamroh, "dilnoza", "counsellor")
    settings = staff_settings(database_url, tmp_path)
    other = Hamroh(
        engine=create_engine(database_url), flows=small_flows, vault=vault, clock=clock, new_token=Tokens()
    )
    try:
        first, second = create_app(settings, small_hamroh), create_app(settings, other)
        async with browser(first, address="10.0.0.1") as one, browser(second, address="10.0.0.2") as two:
            for client in (one, two, one, two, one):
                assert (await log_in(client, "dilnoza", WRONG)).status_code == 401
            for client in (one, two):
                refused = await log_in(client, "dilnoza")  # the right password, and still refused
                assert refused.status_code == 429
                assert "Too many failed logins" in refused.text
                assert "Try again in 15 minutes" in refused.text
                assert refused.headers["retry-after"] == "900"
                assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")
            clock.advance(minutes=14)
            assert "Try again in 1 minute." in (await log_in(two, "dilnoza")).text
            clock.advance(minutes=1)
            assert (await log_in(two, "dilnoza")).status_code == 303
    finally:
        await other.engine.dispose()


# Every mode


async def test_staff_login_exists_in_production(
    small_hamroh: Hamroh, database_url: str, tmp_path: Path
) -> None:
    settings = staff_settings(database_url, tmp_path).model_copy(
        update={"env": "production", "simulator": False}
    )
    await add_staff(small_hamroh, "dilnoza", "admin")
    async with browser(create_app(settings, small_hamroh)) as client:
        assert (await client.get("/login")).status_code == 200
        assert (await client.get("/static/staff.css")).status_code == 200
        assert (await log_in(client, "dilnoza")).status_code == 303
