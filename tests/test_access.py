"""Who may call which route: every route of the app, as anonymous and as each role.

The routes come from the app's own route table, so a new route cannot be left out: the test fails for any
route missing from ACCESS below (and for a row whose route is gone). Adding a route means adding its row:

    ("GET", "/console"): COUNSELLING,
    ("POST", "/console/cases/{case_id}/claim"): COUNSELLING,
    ("GET", "/api/reports/monthly"): ("coordinator", "admin"),

Paths starting with /api/ are called with `Authorization: Bearer <token>`; every other path with the session
cookie (and, for a POST, a form carrying the session's csrf token). Path parameters get SAMPLES (default
999999, an id that exists nowhere: an allowed role may then get 404, which is fine).

What is asserted, for a tuple of roles:
- anonymous: 303 to /login for a page, 401 with `WWW-Authenticate: Bearer` under /api/;
- a role not in the tuple: 403;
- a role in the tuple: anything but 401 or 403 (or, for a GET, a redirect to /login).
PUBLIC routes are open to everyone; WEBHOOK routes check their provider's signature themselves (an unsigned
call gets 401 or 403, never the login form); SIMULATOR routes exist in development only.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount

from api.app import create_app
from api.deps import SESSION_COOKIE
from bot.config import Settings
from bot.conversation.flows import FlowSet
from bot.service import Hamroh
from bot.staff import accounts, sessions
from bot.store import ROLES
from bot.store.crypto import Vault
from bot.store.db import create_engine, transaction
from tests.conftest import TEST_ENCRYPTION_KEY, TEST_HASH_KEY, Clock, Tokens

PUBLIC = "public"
WEBHOOK = "webhook"
SIMULATOR = "simulator"
EVERYONE = tuple(ROLES)
COUNSELLING = ("counsellor", "supervisor", "admin")  # the console
COORDINATING = ("coordinator", "admin")  # announcements, courses, reports

Access = str | tuple[str, ...]

ACCESS: dict[tuple[str, str], Access] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/static"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): EVERYONE,
    ("POST", "/webhooks/telegram"): WEBHOOK,
    ("POST", "/webhooks/sms"): WEBHOOK,
    ("POST", "/webhooks/sms/status"): WEBHOOK,
    ("POST", "/webhooks/sms/fallback"): WEBHOOK,
    ("GET", "/"): SIMULATOR,
    ("POST", "/simulator/messages"): SIMULATOR,
    ("GET", "/api/openapi.json"): PUBLIC,
    ("GET", "/api/cases"): COUNSELLING,
    ("GET", "/api/cases/{case_id}"): COUNSELLING,
    ("POST", "/api/cases/{case_id}/claim"): COUNSELLING,
    ("POST", "/api/cases/{case_id}/messages"): COUNSELLING,
    ("POST", "/api/cases/{case_id}/close"): COUNSELLING,
    ("POST", "/api/cases/{case_id}/transfer"): COUNSELLING,
    ("GET", "/console"): COUNSELLING,
    ("GET", "/coordinate"): COORDINATING,
    ("GET", "/coordinate/reports"): COORDINATING,
    ("GET", "/coordinate/reports/{table}.csv"): COORDINATING,
    ("GET", "/api/reports/{table}"): COORDINATING,
    ("GET", "/api/reports/{table}.csv"): COORDINATING,
    ("GET", "/coordinate/announcements"): COORDINATING,
    ("POST", "/coordinate/announcements"): COORDINATING,
    ("POST", "/coordinate/announcements/preview"): COORDINATING,
    ("GET", "/coordinate/announcements/list"): COORDINATING,
    ("GET", "/coordinate/announcements/{announcement_id}"): COORDINATING,
    ("GET", "/coordinate/announcements/{announcement_id}/counts"): COORDINATING,
    ("POST", "/coordinate/announcements/{announcement_id}/send"): COORDINATING,
    ("POST", "/coordinate/announcements/{announcement_id}/approve"): COORDINATING,
    ("POST", "/coordinate/announcements/{announcement_id}/cancel"): COORDINATING,
    ("GET", "/api/announcements"): COORDINATING,
    ("POST", "/api/announcements"): COORDINATING,
    ("GET", "/api/announcements/{announcement_id}"): COORDINATING,
    ("POST", "/api/announcements/{announcement_id}/send"): COORDINATING,
    ("POST", "/api/announcements/{announcement_id}/approve"): COORDINATING,
    ("POST", "/api/announcements/{announcement_id}/cancel"): COORDINATING,
    ("GET", "/console/audit"): ("admin",),
    ("GET", "/console/queue"): COUNSELLING,
    ("GET", "/console/events"): COUNSELLING,
    ("GET", "/console/cases/{case_id}"): COUNSELLING,
    ("GET", "/console/cases/{case_id}/live"): COUNSELLING,
    ("GET", "/console/cases/{case_id}/media/{line_id}"): COUNSELLING,
    ("POST", "/console/cases/{case_id}/cost"): COUNSELLING,
    ("POST", "/console/cases/{case_id}/claim"): COUNSELLING,
    ("POST", "/console/cases/{case_id}/release"): COUNSELLING,
    ("POST", "/console/cases/{case_id}/reply"): COUNSELLING,
    ("POST", "/console/cases/{case_id}/note"): COUNSELLING,
    ("POST", "/console/cases/{case_id}/transfer"): COUNSELLING,
    ("POST", "/console/cases/{case_id}/send-now"): COUNSELLING,
    ("POST", "/console/cases/{case_id}/safe-hours"): COUNSELLING,
    ("POST", "/console/cases/{case_id}/close"): COUNSELLING,
    ("POST", "/console/cases/{case_id}/unmask"): COUNSELLING,
    ("GET", "/coordinate/courses"): COORDINATING,
    ("POST", "/coordinate/courses"): COORDINATING,
    ("GET", "/coordinate/courses/new"): COORDINATING,
    ("GET", "/coordinate/courses/{course_id}"): COORDINATING,
    ("POST", "/coordinate/courses/{course_id}"): COORDINATING,
    ("POST", "/coordinate/courses/{course_id}/deactivate"): COORDINATING,
    ("POST", "/coordinate/courses/{course_id}/activate"): COORDINATING,
    ("GET", "/coordinate/courses/{course_id}/enrolments.csv"): COORDINATING,
    ("GET", "/api/courses"): COORDINATING,
    ("POST", "/api/courses"): COORDINATING,
    ("PATCH", "/api/courses/{course_id}"): COORDINATING,
    ("DELETE", "/api/courses/{course_id}"): COORDINATING,
    ("GET", "/api/courses/{course_id}/enrolments.csv"): COORDINATING,
}

# A path parameter's sample value, by name, where 999999 will not do.
SAMPLES: dict[str, str] = {"table": "requests"}
MOUNTED = {"/static": "/static/staff.css"}  # what to ask a mounted app for

PASSWORD = "correct horse battery"
ANSWER_SECONDS = 10


def routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route the app answers, mounted apps included."""
    found: set[tuple[str, str]] = set()
    for context in iter_route_contexts(app.routes):
        path = context.path  # with the prefixes of the routers it was included through
        assert path, f"a route of a kind this test does not know: {context.original_route!r}"
        if isinstance(context.original_route, Mount):
            found.add(("GET", path))
            continue
        methods = context.methods
        assert methods, f"a route of a kind this test does not know: {context.original_route!r}"
        found |= {(method, path) for method in methods if method != "HEAD"}
    return found


def sample_path(path: str) -> str:
    if path in MOUNTED:
        return MOUNTED[path]
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: SAMPLES.get(m.group(1), "999999"), path)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]

    def to_login(self) -> bool:
        return self.status == 303 and self.headers.get("location") == "/login"


async def answer(app: FastAPI, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> Answer:
    """The status line and headers of the app's answer, read straight from ASGI.

    Only the start of the answer is read: a live page (server-sent events) never ends, and an HTTP client
    would wait for its end. Once the answer has started, the client "disconnects", which ends any stream.
    """
    started: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
    gone = asyncio.Event()
    body_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and not started.done():
            raw = message.get("headers", [])
            started.set_result(Answer(message["status"], {k.decode().lower(): v.decode() for k, v in raw}))
            gone.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("hamroh.test", 80),
    }
    running = asyncio.create_task(app(scope, receive, send))  # type: ignore[arg-type]
    await asyncio.wait({running, started}, timeout=ANSWER_SECONDS, return_when=asyncio.FIRST_COMPLETED)
    if running.done() and running.exception() is not None:
        raise AssertionError(f"{method} {path} raised {running.exception()!r}")
    if not started.done():
        running.cancel()
        raise AssertionError(f"{method} {path} did not answer within {ANSWER_SECONDS} s")
    try:
        await asyncio.wait_for(running, ANSWER_SECONDS)
    except TimeoutError:
        pass  # a stream that ignores the disconnect: its status is all this test needs
    except Exception as exc:
        raise AssertionError(f"{method} {path} raised {exc!r}") from exc
    return started.result()


def full_settings(database_url: str, tmp_path: Path, env: str = "development") -> Settings:
    """Every channel on, so that every route the app can have is in its table."""
    return Settings(
        env=env,  # type: ignore[arg-type]
        simulator=env == "development",
        database_url=database_url,
        var_dir=tmp_path,
        encryption_key=TEST_ENCRYPTION_KEY,
        hash_key=TEST_HASH_KEY,
        public_url="https://hamroh.example.org",
        telegram_token="123456789:" + "A" * 35,
        telegram_secret="telegram-secret",
        twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token="twilio-auth-token",
        twilio_from="+15005550006",
    )


@pytest.fixture
async def hamroh(
    database_url: str, small_flows: FlowSet, vault: Vault, clock: Clock
) -> AsyncIterator[Hamroh]:
    engine = create_engine(database_url)
    service = Hamroh(engine=engine, flows=small_flows, vault=vault, clock=clock, new_token=Tokens())
    async with transaction(engine) as db:
        for role in ROLES:
            await accounts.add_staff(db, name=role, role=role, password=PASSWORD, now=clock())
    yield service
    await engine.dispose()


class Caller:
    """Calls a route as anonymous or as the account named after a role, each call with a fresh login.

    Fresh, because a call may change the login itself (POST /logout ends it).
    """

    def __init__(self, app: FastAPI, hamroh: Hamroh, tokens: dict[str, str]) -> None:
        self.app, self.hamroh, self.tokens = app, hamroh, tokens

    async def call(self, method: str, path: str, role: str | None) -> Answer:
        url = sample_path(path)
        api = path.startswith("/api/")
        headers: dict[str, str] = {}
        body = b""
        if api:
            if role is not None:
                headers["authorization"] = f"Bearer {self.tokens[role]}"
            if method != "GET":
                headers["content-type"] = "application/json"
                body = json.dumps({}).encode()
            return await answer(self.app, method, url, headers, body)
        csrf = ""
        if role is not None:
            async with transaction(self.hamroh.engine) as db:
                staff = await accounts.get_staff(db, name=role)
                login = await sessions.start_session(db, staff=staff, now=self.hamroh.clock())
            headers["cookie"] = f"{SESSION_COOKIE}={login.token}"
            csrf = login.csrf
        if method != "GET":
            headers["content-type"] = "application/x-www-form-urlencoded"
            body = f"csrf={csrf}".encode()
        return await answer(self.app, method, url, headers, body)


def check(access: Access, method: str, path: str, who: str | None, got: Answer) -> str | None:
    """What is wrong with this answer, if anything."""
    api = path.startswith("/api/")
    if access == PUBLIC:
        wrong = got.to_login() or got.status == 403 or (api and got.status == 401)
        return "a public route refused" if wrong else None
    if access == WEBHOOK:
        return None if got.status in (401, 403) else "an unsigned webhook call was not refused"
    if access == SIMULATOR:
        return "the simulator refused" if got.to_login() or got.status in (401, 403) else None
    assert isinstance(access, tuple), f"unknown access {access!r}"
    if who is None:
        if api:
            ok = got.status == 401 and got.headers.get("www-authenticate") == "Bearer"
            return None if ok else "anonymous should get 401 with WWW-Authenticate: Bearer"
        return None if got.to_login() else "anonymous should be sent to /login (303)"
    if who in access:
        # A form's answer may well be a redirect to /login (logging out is one); a page's never is.
        refused = got.status in (401, 403) or (method == "GET" and got.to_login())
        return f"{who} may, and was refused" if refused else None
    return None if got.status == 403 else f"{who} may not, and should get 403"


async def test_every_route_is_in_the_table_and_answers_each_role_as_it_says(
    hamroh: Hamroh, database_url: str, tmp_path: Path
) -> None:
    app = create_app(full_settings(database_url, tmp_path), hamroh)
    table = routes(app)
    missing = sorted(table - ACCESS.keys())
    assert not missing, f"routes missing from ACCESS in {__file__}: {missing}"
    stale = sorted(ACCESS.keys() - table)
    assert not stale, f"rows of ACCESS whose route does not exist: {stale}"
    assert set(EVERYONE) == set(ROLES)

    tokens: dict[str, str] = {}
    async with transaction(hamroh.engine) as db:
        for role in ROLES:
            tokens[role] = await accounts.issue_token(db, name=role, now=hamroh.clock())

    problems: list[str] = []
    async with app.router.lifespan_context(app):
        caller = Caller(app, hamroh, tokens)
        for (method, path), access in sorted(ACCESS.items()):
            callers: list[str | None] = [None]
            if isinstance(access, tuple):
                for role in access:
                    assert role in ROLES, f"{method} {path}: unknown role {role!r}"
                callers += list(ROLES)
            for who in callers:
                got = await caller.call(method, path, who)
                problem = check(access, method, path, who, got)
                if problem:
                    problems.append(f"{method} {path} as {who or 'anonymous'}: {got.status}: {problem}")
    assert not problems, "\n".join(problems)


async def test_staff_routes_are_the_same_in_production(
    hamroh: Hamroh, database_url: str, tmp_path: Path
) -> None:
    development = routes(create_app(full_settings(database_url, tmp_path), hamroh))
    production = routes(create_app(full_settings(database_url, tmp_path, "production"), hamroh))
    simulator = {key for key, access in ACCESS.items() if access == SIMULATOR}
    assert production == development - simulator
