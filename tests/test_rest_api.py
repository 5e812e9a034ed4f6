"""The JSON API as an integration uses it: a bearer token, the queue, a case claimed, answered, moved and
closed; the refusals (401, 403, 404, 409, 422, never a 500); and the schema it publishes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import col, select

from api.app import create_app
from api.deps import SESSION_COOKIE
from api.rest.models import Outcome
from bot.cases.actions import OUTCOMES
from bot.config import Settings
from bot.conversation.flows import FlowSet
from bot.service import Hamroh
from bot.staff.accounts import disable_staff, get_staff, issue_token, revoke_token
from bot.staff.sessions import start_session
from bot.store import AuditEntry, Case, OutboxMessage
from bot.store.crypto import Vault
from bot.store.db import create_engine, transaction
from tests.conftest import TEST_ENCRYPTION_KEY, TEST_HASH_KEY, Clock, Tokens
from tests.test_case_actions import CHAT, OTHER_CHAT, STAFF, add_staff, open_case, opened

BASE = "http://hamroh.test"
JSON = {"content-type": "application/json"}


@pytest.fixture
def hamroh(small_hamroh: Hamroh) -> Hamroh:
    return small_hamroh


def production_app(hamroh: Hamroh, database_url: str, tmp_path: Path) -> FastAPI:
    """The app as deployed (no simulator), on this service."""
    settings = Settings(
        env="production",
        database_url=database_url,
        var_dir=tmp_path,
        encryption_key=TEST_ENCRYPTION_KEY,
        hash_key=TEST_HASH_KEY,
    )
    return create_app(settings, hamroh)


async def bearer_tokens(hamroh: Hamroh) -> dict[str, dict[str, str]]:
    """An Authorization header for each member of the team (tests/test_case_actions.py STAFF)."""
    await add_staff(hamroh.engine, hamroh.clock())
    headers = {}
    async with transaction(hamroh.engine) as db:
        for name in STAFF:
            token = await issue_token(db, name=name, now=hamroh.clock())
            headers[name] = {"Authorization": f"Bearer {token}"}
    return headers


@pytest.fixture
def app(hamroh: Hamroh, database_url: str, tmp_path: Path) -> FastAPI:
    return production_app(hamroh, database_url, tmp_path)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield client


@pytest.fixture
async def tokens(hamroh: Hamroh) -> dict[str, dict[str, str]]:
    return await bearer_tokens(hamroh)


async def test_a_case_through_the_api_from_the_queue_to_closing(
    client: httpx.AsyncClient, hamroh: Hamroh, tokens: dict[str, dict[str, str]], clock: Clock
) -> None:
    dilnoza = tokens["dilnoza"]
    calm = await open_case(hamroh.engine, hamroh.vault, clock.now)
    clock.advance(minutes=2)
    urgent = await open_case(
        hamroh.engine, hamroh.vault, clock.now, address=OTHER_CHAT, priority="urgent", category="violence"
    )

    listing = await client.get("/api/cases", params={"status": "waiting"}, headers=dilnoza)
    assert listing.status_code == 200
    cases = listing.json()["cases"]
    assert [c["id"] for c in cases] == [urgent, calm]
    assert {
        k: cases[0][k] for k in ("status", "priority", "category", "queue", "channel", "lang", "address")
    } == {
        "status": "waiting",
        "priority": "urgent",
        "category": "violence",
        "queue": "support",
        "channel": "telegram",
        "lang": "tg",
        "address": "tg:7…00",
    }
    assert CHAT not in listing.text
    assert OTHER_CHAT not in listing.text

    claimed = await client.post(f"/api/cases/{urgent}/claim", headers=dilnoza)
    assert claimed.status_code == 200
    assert (claimed.json()["status"], claimed.json()["counsellor"]) == ("active", "dilnoza")
    wrote = await client.post(
        f"/api/cases/{urgent}/messages", json={"text": "Салом, ман Дилноза."}, headers=dilnoza
    )
    assert wrote.status_code == 202
    async with transaction(hamroh.engine) as db:
        (row,) = (await db.exec(select(OutboxMessage))).all()
    assert opened(hamroh.vault, row) == {"text": "Салом, ман Дилноза."}
    assert hamroh.vault.open(row.address) == OTHER_CHAT

    case = (await client.get(f"/api/cases/{urgent}", headers=dilnoza)).json()
    assert case["messages"] == [
        {"from": "staff", "text": "Салом, ман Дилноза.", "at": "2026-11-28T09:02:00Z"}
    ]
    assert (case["id"], case["status"], case["notes"], case["held"]) == (urgent, "active", [], 0)

    moved = await client.post(f"/api/cases/{urgent}/transfer", json={"to": "farida"}, headers=dilnoza)
    assert (moved.status_code, moved.json()["counsellor"]) == (200, "farida")
    assert (
        await client.post(f"/api/cases/{urgent}/close", json={"outcome": "referred"}, headers=dilnoza)
    ).status_code == 409
    closed = await client.post(
        f"/api/cases/{urgent}/close",
        json={"outcome": "referred", "note": "to the crisis centre"},
        headers=tokens["farida"],
    )
    assert (closed.status_code, closed.json()["status"]) == (200, "closed")
    back = await client.post(f"/api/cases/{calm}/transfer", json={"queue": "legal"}, headers=tokens["malika"])
    assert (back.status_code, back.json()["queue"], back.json()["status"]) == (200, "legal", "waiting")
    assert [
        c["id"]
        for c in (await client.get("/api/cases", params={"status": "closed"}, headers=dilnoza)).json()[
            "cases"
        ]
    ] == [urgent]

    async with transaction(hamroh.engine) as db:
        audit = (await db.exec(select(AuditEntry).order_by(col(AuditEntry.id)))).all()
    assert [(a.staff_name, a.action) for a in audit] == [
        ("dilnoza", "claimed"),
        ("dilnoza", "wrote"),
        ("dilnoza", "viewed"),
        ("dilnoza", "transferred"),
        ("farida", "closed"),
        ("malika", "transferred"),
    ]


async def test_refusals_say_why_and_never_crash(
    client: httpx.AsyncClient, hamroh: Hamroh, tokens: dict[str, dict[str, str]], clock: Clock
) -> None:
    dilnoza, farida = tokens["dilnoza"], tokens["farida"]
    case_id = await open_case(hamroh.engine, hamroh.vault, clock.now)
    url = f"/api/cases/{case_id}"

    # Who: no token, a wrong one, a role that does not work on cases.
    assert (await client.get("/api/cases")).status_code == 401
    assert (
        await client.get("/api/cases", headers={"Authorization": "Bearer hamroh_nope"})
    ).status_code == 401
    assert (await client.get("/api/cases", headers={"Authorization": "Basic eDp5"})).status_code == 401
    assert (await client.get("/api/cases", headers=tokens["zarina"])).status_code == 403
    assert (await client.post(f"{url}/claim", headers=tokens["zarina"])).status_code == 403

    # What: unknown cases, bad statuses, bad bodies.
    for path in ("/api/cases/999999", "/api/cases/999999/claim"):
        method = client.get if path.endswith("999") else client.post
        assert (await method(path, headers=dilnoza)).status_code == 404
    bad = [
        ("GET", "/api/cases?status=lost", None),
        ("GET", "/api/cases/abc", None),
        ("GET", "/api/cases/99999999999999999999", None),
        ("GET", "/api/cases/0", None),
        ("POST", f"{url}/messages", {"text": ""}),
        ("POST", f"{url}/messages", {"text": "x" * 1601}),
        ("POST", f"{url}/messages", {"words": "hi"}),
        ("POST", f"{url}/messages", ["hi"]),
        ("POST", f"{url}/close", {"outcome": "erased"}),
        ("POST", f"{url}/close", {}),
        ("POST", f"{url}/transfer", {"to": "farida", "queue": "legal"}),
        ("POST", f"{url}/transfer", {}),
        ("POST", f"{url}/transfer", {"to": "far\u0000ida"}),
        ("POST", f"{url}/transfer", {"to": "far\ud800ida"}),
        ("POST", f"{url}/messages", {"text": "hi", "\ud800": 1}),
    ]
    for method, path, body in bad:
        raw = json.dumps(body).encode() if body is not None else None  # escaped: a lone surrogate too
        answer = await client.request(method, path, content=raw, headers={**dilnoza, **JSON})
        assert answer.status_code == 422, (method, path, body, answer.text)
        assert answer.json()["detail"]
    garbled = await client.post(f"{url}/messages", content=b"{not json", headers={**dilnoza, **JSON})
    assert garbled.status_code == 422

    # Whose: a case not claimed, claimed by another, closed.
    assert (await client.post(f"{url}/messages", json={"text": "hi"}, headers=dilnoza)).status_code == 409
    assert (await client.post(f"{url}/claim", headers=dilnoza)).status_code == 200
    for path, body in ((f"{url}/messages", {"text": "hi"}), (f"{url}/transfer", {"queue": "legal"})):
        answer = await client.post(path, json=body, headers=farida)
        assert answer.status_code == 409
        assert answer.json() == {"detail": "another counsellor has it"}
    assert (await client.post(f"{url}/claim", headers=farida)).status_code == 409
    unknown = await client.post(f"{url}/transfer", json={"to": "nobody"}, headers=dilnoza)
    assert (unknown.status_code, unknown.json()["detail"]) == (
        422,
        "no active counsellor, supervisor or admin has that name",
    )
    assert (
        await client.post(f"{url}/transfer", json={"queue": "nowhere"}, headers=dilnoza)
    ).status_code == 422
    assert (await client.post(f"{url}/messages", json={"text": "   "}, headers=dilnoza)).status_code == 422
    # JSON may carry what UTF-8 cannot (a lone surrogate): refused, never a 500; control characters dropped.
    for raw, code in ((b'{"text": "\\ud800"}', 422), (b'{"text": "hi\\u0000 there\\r\\n"}', 202)):
        answer = await client.post(f"{url}/messages", content=raw, headers={**dilnoza, **JSON})
        assert answer.status_code == code, answer.text
    case = (await client.get(url, headers=dilnoza)).json()
    assert [m["text"] for m in case["messages"]] == ["hi there"]
    assert (
        await client.post(f"{url}/close", json={"outcome": "resolved"}, headers=dilnoza)
    ).status_code == 200
    assert (await client.post(f"{url}/claim", headers=dilnoza)).status_code == 409
    assert (await client.post(f"{url}/messages", json={"text": "hi"}, headers=dilnoza)).status_code == 409

    # A token stops working when revoked or when its account is disabled.
    async with transaction(hamroh.engine) as db:
        await revoke_token(db, name="farida")
        await disable_staff(db, name="dilnoza")
    assert (await client.get("/api/cases", headers=farida)).status_code == 401
    assert (await client.get("/api/cases", headers=dilnoza)).status_code == 401


async def test_a_console_login_does_not_open_the_api(
    client: httpx.AsyncClient, hamroh: Hamroh, tokens: dict[str, dict[str, str]]
) -> None:
    async with transaction(hamroh.engine) as db:
        dilnoza = await get_staff(db, name="dilnoza")
        login = await start_session(db, staff=dilnoza, now=hamroh.clock())
    answer = await client.get("/api/cases", headers={"Cookie": f"{SESSION_COOKIE}={login.token}"})
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.postgres
async def test_two_claims_at_once_over_the_api_one_gets_409(
    postgres_url: str, small_flows: FlowSet, vault: Vault, clock: Clock, tmp_path: Path
) -> None:
    """Two API processes (two apps, two engines) claim the same case at the same moment."""
    settings = Settings(
        database_url=postgres_url,
        var_dir=tmp_path,
        encryption_key=TEST_ENCRYPTION_KEY,
        hash_key=TEST_HASH_KEY,
    )
    services = [
        Hamroh(
            engine=create_engine(postgres_url),
            flows=small_flows,
            vault=vault,
            clock=clock,
            new_token=Tokens(),
        )
        for _ in range(2)
    ]
    try:
        await add_staff(services[0].engine, clock.now)
        case_id = await open_case(services[0].engine, vault, clock.now)
        async with transaction(services[0].engine) as db:
            headers = [
                {"Authorization": f"Bearer {await issue_token(db, name=name, now=clock.now)}"}
                for name in ("dilnoza", "farida")
            ]
        clients = [
            httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings, service)), base_url=BASE)
            for service in services
        ]
        barrier = asyncio.Barrier(2)

        async def claim(client: httpx.AsyncClient, header: dict[str, str]) -> int:
            await barrier.wait()
            return (await client.post(f"/api/cases/{case_id}/claim", headers=header)).status_code

        codes = await asyncio.gather(*(claim(c, h) for c, h in zip(clients, headers, strict=True)))
        assert sorted(codes) == [200, 409]
        for client in clients:
            await client.aclose()
        async with transaction(services[0].engine) as db:
            case = await db.get(Case, case_id)
        assert case is not None
        assert case.status == "active"
    finally:
        for service in services:
            await service.engine.dispose()


async def test_the_api_publishes_its_own_schema(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/openapi.json")
    assert answer.status_code == 200
    schema: dict[str, Any] = answer.json()
    assert set(schema["paths"]) == {
        "/api/cases",
        "/api/cases/{case_id}",
        "/api/cases/{case_id}/claim",
        "/api/cases/{case_id}/messages",
        "/api/cases/{case_id}/close",
        "/api/cases/{case_id}/transfer",
        "/api/announcements",
        "/api/announcements/{announcement_id}",
        "/api/announcements/{announcement_id}/send",
        "/api/announcements/{announcement_id}/approve",
        "/api/announcements/{announcement_id}/cancel",
        "/api/courses",
        "/api/courses/{course_id}",
        "/api/courses/{course_id}/enrolments.csv",
        "/api/reports/{table}",
        "/api/reports/{table}.csv",
    }
    messages = schema["paths"]["/api/cases/{case_id}/messages"]["post"]
    assert "202" in messages["responses"]
    assert "409" in messages["responses"]
    assert schema["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    assert schema["components"]["schemas"]["Message"]["properties"]["from"]["enum"] == ["her", "staff", "bot"]
    assert (await client.get("/openapi.json")).status_code == 404  # the rest of the app publishes none


def test_the_api_offers_every_outcome_staff_may_choose() -> None:
    assert get_args(Outcome) == OUTCOMES
