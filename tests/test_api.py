"""The HTTP edge: /healthz in every mode, and the simulator's routes refusing bad input with a reason."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from bot.config import Settings
from bot.service import Hamroh, count_rows
from bot.store import Case, Contact, ConversationState, Delivery, OutboxMessage, RequestLogEntry
from bot.store.db import transaction
from tests.conftest import TEST_ENCRYPTION_KEY, TEST_HASH_KEY

PHONE = "+992900000001"
CHAT = "tg:100001"
BASE = "http://hamroh.test"
JSON = {"content-type": "application/json"}
VALID = {"channel": "sms", "address": PHONE, "text": "hi"}
STORED = (Contact, ConversationState, Delivery, OutboxMessage, RequestLogEntry, Case)


@asynccontextmanager
async def started(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app, started and stopped as uvicorn would (its lifespan disposes the database)."""
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=BASE) as client,
    ):
        yield client


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """The development app, simulator on."""
    return create_app(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with started(app) as client:
        yield client


def production(database_url: str) -> Settings:
    return Settings(
        env="production",
        encryption_key=TEST_ENCRYPTION_KEY,
        hash_key=TEST_HASH_KEY,
        database_url=database_url,
    )


async def stored(app: FastAPI) -> dict[str, int]:
    """How many rows each table of hers holds."""
    hamroh: Hamroh = app.state.hamroh
    async with transaction(hamroh.engine) as db:
        return {table.__tablename__: await count_rows(db, table) for table in STORED}


async def say(
    client: httpx.AsyncClient,
    text: str = "",
    *,
    channel: str = "sms",
    address: str = PHONE,
    button: str | None = None,
) -> list[dict[str, Any]]:
    """She sends a message (or presses a button); the replies her phone shows."""
    body: dict[str, Any] = {"channel": channel, "address": address, "text": text}
    if button is not None:
        body["button"] = button
    response = await client.post("/simulator/messages", json=body)
    assert response.status_code == 200, response.text
    replies: list[dict[str, Any]] = response.json()["replies"]
    assert replies, f"no reply to {text or button!r}"
    assert all(reply["text"].strip() for reply in replies)
    return replies


def buttons(reply: dict[str, Any]) -> list[dict[str, str]]:
    return [button for row in reply["reply_markup"]["inline_keyboard"] for button in row]


# /healthz


async def test_healthz_says_ok_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.parametrize("env", ["development", "production"])
async def test_healthz_says_unavailable_when_the_database_does_not_answer(env: str, tmp_path: Path) -> None:
    broken = tmp_path / "hamroh.db"
    broken.write_bytes(b"this file is not a database " * 200)
    settings = production(f"sqlite:///{broken}")
    if env == "development":
        settings = settings.model_copy(update={"env": "development"})
    async with started(create_app(settings)) as client:
        response = await client.get("/healthz")
    assert (response.status_code, response.json()) == (503, {"status": "unavailable"})


async def test_production_answers_healthz_and_has_no_simulator(sqlite_url: str) -> None:
    async with started(create_app(production(sqlite_url))) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/")).status_code == 404
        assert (await client.post("/simulator/messages", json=VALID)).status_code == 404


# The page


async def test_the_page_is_served_with_its_own_script_and_style_only(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Development simulator" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "//" not in page.text  # nothing is fetched from elsewhere
    assert 'data-endpoint="/simulator/messages"' in page.text
    for asset in ("/static/simulator.js", "/static/simulator.css"):
        assert asset in page.text
        assert (await client.get(asset)).status_code == 200
    assert "innerHTML" not in (await client.get("/static/simulator.js")).text


# Conversations


async def test_an_sms_conversation_greets_in_both_languages_then_speaks_tajik(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    (greeting,) = await say(client, "Салом")
    assert "Ҳамроҳ" in greeting["text"]  # in Tajik
    assert "Хамрох" in greeting["text"]  # and in Russian
    assert greeting["text"].endswith("1 Тоҷикӣ\n2 Русский")
    sms = greeting["sms"]
    assert (sms["encoding"], sms["chars"]) == ("ucs2", len(greeting["text"]))
    assert 1 <= sms["segments"] <= 2

    (menu,) = await say(client, "1")
    assert "\n1 Ҳуқуқҳои шумо\n" in menu["text"]  # the main menu, in Tajik
    (topic,) = await say(client, "1")
    assert topic["text"] != menu["text"]
    assert "0 " in topic["text"]  # the way back to the menu

    rows = await stored(app)
    assert (rows["contacts"], rows["sessions"], rows["outbox"]) == (1, 1, 3)


async def test_a_telegram_conversation_is_held_with_buttons(client: httpx.AsyncClient, app: FastAPI) -> None:
    (greeting,) = await say(client, "/start", channel="telegram", address=CHAT)
    assert "sms" not in greeting
    assert [b["text"] for b in buttons(greeting)] == ["Тоҷикӣ", "Русский"]

    tajik = buttons(greeting)[0]["callback_data"]
    (menu,) = await say(client, channel="telegram", address=CHAT, button=tajik)
    first_topic = buttons(menu)[0]
    assert first_topic["text"] == "Ҳуқуқҳои шумо"
    (topic,) = await say(client, channel="telegram", address=CHAT, button=first_topic["callback_data"])
    assert topic["text"] != menu["text"]
    assert buttons(topic), "every screen leads somewhere"
    assert (await stored(app))["contacts"] == 1


async def test_two_addresses_are_two_women(client: httpx.AsyncClient, app: FastAPI) -> None:
    await say(client, "hi", address="+992900000001")
    await say(client, "hi", address="+992900000002")
    await say(client, "hi", channel="telegram", address="tg:100001")
    assert (await stored(app))["contacts"] == 3


# Odd input she may really send: answered sensibly, never a 500, nothing echoed as markup.

ODD_TEXTS = {
    "10,000 characters": ("помощь " * 1430)[:10_000],
    "emoji": "🙂👍🏽🇹🇯 ❤️",
    "control characters": "\x00\x07\x1b[31m1\x7f\x9b",
    "zero-width": "\u200b\u200c\u200d\ufeff1\u2060",
    "right-to-left marks": "\u200f\u202e1\u202c\u200e",
    "SQL": "1'; DROP TABLE contacts; --",
    "HTML": '<script>alert("x")</script><img src=x onerror=alert(1)><b>1</b>',
    "only spaces": " \t\n ",
}


@pytest.mark.parametrize("text", ODD_TEXTS.values(), ids=ODD_TEXTS.keys())
async def test_odd_input_is_answered_sensibly(text: str, client: httpx.AsyncClient, app: FastAPI) -> None:
    await say(client, "hi")
    await say(client, "1")  # Tajik
    (sms,) = await say(client, text)
    assert re.search(r"\n1 |1-\d+", sms["text"]), "she sees the numbers, or is told which she can reply"
    (telegram,) = await say(client, text, channel="telegram", address=CHAT)
    assert buttons(telegram), "she can go on by a button"
    for reply in (sms, telegram):
        assert "<" not in reply["text"]  # nothing of hers is echoed back as markup
    assert (await stored(app))["contacts"] == 2  # the tables are all still there; she is still one woman


# Bad requests: a 4xx that says why, and nothing stored.

BAD_REQUESTS: dict[str, tuple[dict[str, Any], int, str]] = {
    "form instead of JSON": ({"data": VALID}, 415, "JSON"),
    "text/plain": ({"content": json.dumps(VALID), "headers": {"content-type": "text/plain"}}, 415, "JSON"),
    "no content type": ({"content": json.dumps(VALID), "headers": {"content-type": ""}}, 415, "JSON"),
    "malformed JSON": (
        {"content": b'{"channel": "sms", "address": ', "headers": JSON},
        400,
        "not valid JSON",
    ),
    "not UTF-8": ({"content": b'{"text": "\xff\xfe"}', "headers": JSON}, 400, "not valid JSON"),
    "empty body": ({"content": b"", "headers": JSON}, 400, "not valid JSON"),
    "deeply nested": ({"content": b"[" * 100_000, "headers": JSON}, 400, "not valid JSON"),
    "a list": ({"json": [VALID]}, 422, "valid dictionary"),
    "unknown channel": ({"json": {**VALID, "channel": "whatsapp"}}, 422, "channel"),
    "no channel": ({"json": {"address": PHONE, "text": "hi"}}, 422, "channel: Field required"),
    "empty address": ({"json": {**VALID, "address": ""}}, 422, "address"),
    "a name, not a number": ({"json": {**VALID, "address": "Zarina"}}, 422, "not a phone number"),
    "SQL as address": ({"json": {**VALID, "address": "1' OR '1'='1"}}, 422, "not a phone number"),
    "HTML as address": ({"json": {**VALID, "address": "<b>992</b>"}}, 422, "not a phone number"),
    "NUL in address": ({"json": {**VALID, "address": "+99290\x000000001"}}, 422, "not a phone number"),
    "username as chat id": (
        {"json": {**VALID, "channel": "telegram", "address": "@zarina"}},
        422,
        "not a Telegram chat id",
    ),
    "a number as text": ({"json": {**VALID, "text": 1}}, 422, "text"),
    "text over 10,000": ({"json": {**VALID, "text": "a" * 10_001}}, 422, "at most 10000 characters"),
    "huge body": ({"json": {**VALID, "text": "a" * 300_000}}, 413, "too long"),
    "long button": ({"json": {**VALID, "button": "x" * 65}}, 422, "button"),
    "lone surrogate": (
        {"content": b'{"channel": "sms", "address": "+992900000001", "text": "\\ud800"}', "headers": JSON},
        422,
        "text: Input should be a valid string",
    ),
    "unknown field": ({"json": {**VALID, "admin": True}}, 422, "admin"),
}


@pytest.mark.parametrize(("request_args", "status", "reason"), BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
async def test_a_bad_request_is_refused_with_a_reason_and_nothing_is_stored(
    request_args: dict[str, Any], status: int, reason: str, client: httpx.AsyncClient, app: FastAPI
) -> None:
    response = await client.post("/simulator/messages", **request_args)
    assert response.status_code == status, response.text
    assert reason in response.json()["detail"]
    assert "a" * 100 not in response.text  # what she sent is not echoed back
    assert set((await stored(app)).values()) == {0}


async def test_a_refused_request_does_not_disturb_her_conversation(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await say(client, "hi")
    before = await stored(app)
    refused = await client.post("/simulator/messages", json={**VALID, "address": "+9929", "text": "1"})
    assert refused.status_code == 422
    assert await stored(app) == before
    (menu,) = await say(client, "1")
    assert "Ҳуқуқҳои шумо" in menu["text"]
