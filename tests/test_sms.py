"""SMS: the real twilio SDK against a fake Twilio API over HTTP, and Twilio's webhooks through the app.

The sender tests speak HTTP to tests/fakes/twilio_api.py; the webhook tests post signed forms, as Twilio
does, to the FastAPI app with the real content, and read what the turn left in the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlmodel import col, select
from twilio.request_validator import RequestValidator

from api.app import create_app
from api.sms import EMPTY_TWIML
from bot.channels.sms import SmsSender, segments_report
from bot.channels.twilio import INBOUND_PATH, STATUS_PATH, TwilioProvider, sms_sender
from bot.config import Settings
from bot.conversation.text import sms_segments
from bot.logs import NOISY, configure_logging
from bot.senders import Failed, Outgoing, RetryLater, SendResult, Sent
from bot.service import Hamroh, count_rows
from bot.store import Contact, ConversationState, Delivery, OutboxMessage, RequestLogEntry
from bot.store.db import transaction
from tests.conftest import TEST_ENCRYPTION_KEY, TEST_HASH_KEY
from tests.fakes.twilio_api import (
    FakeTwilio,
    SignedRequest,
    inbound_sms_form,
    new_sid,
    signed_request,
    status_callback_form,
)

PUBLIC_URL = "https://hamroh.example.org"  # what Twilio calls; the app itself is reached at http://testserver
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
SERVICE_SID = "MG" + "fedcba9876543210" * 2
HAMROH_NUMBER = "+15005550006"
PHONE = "+992937711942"
SHORT_TIMEOUT = 1.0  # long enough for a busy machine to answer, short enough to wait out a hang
STORED = (Contact, ConversationState, Delivery, OutboxMessage, RequestLogEntry)


def twilio_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Development settings with Twilio configured (overrides win)."""
    values: dict[str, Any] = {
        "env": "development",
        "var_dir": tmp_path,
        "encryption_key": TEST_ENCRYPTION_KEY,
        "hash_key": TEST_HASH_KEY,
        "public_url": PUBLIC_URL,
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_from": HAMROH_NUMBER,
    }
    return Settings(**(values | overrides))


def sms(text: str, *, address: str = PHONE) -> Outgoing:
    return Outgoing(id=1, channel="sms", address=address, body={"text": text}, kind="reply", contact_id=1)


def command(body: dict[str, Any]) -> Outgoing:
    return Outgoing(id=2, channel="sms", address=PHONE, body=body, kind="command", contact_id=None)


# `hamroh sms segments`


def test_segments_report_gives_encoding_segments_and_length_per_text() -> None:
    assert segments_report(["Hello", "Салом", "Ҳ" * 97, "x" * 161, ""]) == [
        "gsm7 1 5",
        "ucs2 1 5",
        "ucs2 2 97",
        "gsm7 2 161",
        "gsm7 1 0",
    ]


# The sender: the real SDK, over HTTP, against the fake Twilio API


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        yield server


@pytest.fixture
async def sender(fake: FakeTwilio, tmp_path: Path) -> AsyncIterator[SmsSender]:
    sender = sender_to(fake, tmp_path, timeout=SHORT_TIMEOUT)
    yield sender
    await sender.close()


def sender_to(fake: FakeTwilio, tmp_path: Path, *, timeout: float) -> SmsSender:
    """The real SMS sender, through the Twilio SDK, to the fake Twilio."""
    settings = twilio_settings(
        tmp_path,
        twilio_account_sid=fake.account_sid,
        twilio_auth_token=fake.auth_token,
        twilio_api_url=fake.api_url,
    )
    return sms_sender(settings, timeout=timeout)


async def test_a_reply_leaves_through_the_messaging_service_with_a_delivery_report_url(
    fake: FakeTwilio, tmp_path: Path
) -> None:
    settings = twilio_settings(
        tmp_path,
        twilio_account_sid=fake.account_sid,
        twilio_auth_token=fake.auth_token,
        twilio_api_url=fake.api_url,
        twilio_messaging_service_sid=SERVICE_SID,
    )
    sender = sms_sender(settings)
    try:
        result = await sender.send(sms("Салом! 1 Ҳуқуқҳои шумо"))
    finally:
        await sender.close()
    (message,) = fake.messages
    assert result == Sent((message.sid,))
    assert (message.to, message.body, message.messaging_service_sid, message.from_) == (
        PHONE,
        "Салом! 1 Ҳуқуқҳои шумо",
        SERVICE_SID,
        None,
    )
    assert message.status_callback is not None
    assert message.status_callback.startswith(f"{PUBLIC_URL}{STATUS_PATH}#rc=")  # Twilio retries it
    assert sender.credential == fake.account_sid


async def test_without_a_messaging_service_it_leaves_from_the_number(
    sender: SmsSender, fake: FakeTwilio
) -> None:
    result = await sender.send(sms("Hello"))
    (message,) = fake.messages
    assert result == Sent((message.sid,))
    assert (message.from_, message.messaging_service_sid) == (HAMROH_NUMBER, None)


async def test_without_a_public_url_twilio_is_asked_for_no_delivery_reports(
    fake: FakeTwilio, tmp_path: Path
) -> None:
    settings = twilio_settings(
        tmp_path,
        public_url=None,
        twilio_account_sid=fake.account_sid,
        twilio_auth_token=fake.auth_token,
        twilio_api_url=fake.api_url,
    )
    sender = sms_sender(settings)
    try:
        assert isinstance(await sender.send(sms("Hello")), Sent)
    finally:
        await sender.close()
    assert fake.messages[0].status_callback is None
    assert "StatusCallback" not in fake.calls[0].form


def test_cost_is_the_segments_billed_and_one_for_a_command(sender: SmsSender) -> None:
    assert sender.cost(sms("Hello")) == 1
    assert sender.cost(sms("Ҳ" * 97)) == 2
    assert sender.cost(command({"op": "delete_sms", "sids": [new_sid()] * 5})) == 1


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        pytest.param(429, None, RetryLater("twilio 429 error 20429"), id="too many requests"),
        pytest.param(500, None, RetryLater("twilio 500 error 20500"), id="server error"),
        pytest.param(503, None, RetryLater("twilio 503 error 20503"), id="unavailable"),
        pytest.param(
            400,
            21610,
            Failed("twilio 400 error 21610 (she opted out at the carrier)", unreachable=True),
            id="opted out at the carrier",
        ),
        pytest.param(400, 21211, Failed("twilio 400 error 21211"), id="not a valid number"),
    ],
)
async def test_twilio_refusals_become_results_that_name_no_number_and_no_text(
    sender: SmsSender, fake: FakeTwilio, status: int, code: int | None, expected: SendResult
) -> None:
    fake.fail_next(status, code=code)
    result = await sender.send(sms("Зулфияканарейка"))
    assert result == expected
    assert fake.messages == []
    assert all(secret not in repr(result) for secret in ("992", "Зулфия", fake.auth_token))


async def test_after_a_passing_failure_the_retry_goes_out(sender: SmsSender, fake: FakeTwilio) -> None:
    fake.fail_next(429, times=2)
    assert isinstance(await sender.send(sms("Hello")), RetryLater)
    assert isinstance(await sender.send(sms("Hello")), RetryLater)
    assert isinstance(await sender.send(sms("Hello")), Sent)
    assert [call.status for call in fake.calls] == [429, 429, 201]


async def test_wrong_credentials_keep_the_message_for_later(fake: FakeTwilio) -> None:
    provider = TwilioProvider(
        account_sid=fake.account_sid, auth_token="not-the-token", from_=HAMROH_NUMBER, api_url=fake.api_url
    )
    try:
        result = await SmsSender(provider).send(sms("Hello"))
    finally:
        await provider.close()
    assert isinstance(result, RetryLater)
    assert result.reason.startswith("twilio 401 error 20003")
    assert "not-the-token" not in result.reason


async def test_twilio_unreachable_is_a_passing_failure() -> None:
    with FakeTwilio() as gone:
        api_url = gone.api_url  # a port nobody listens on once the fake has stopped
    provider = TwilioProvider(
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_=HAMROH_NUMBER, api_url=api_url, timeout=2
    )
    try:
        result = await provider.send(PHONE, "Hello")
    finally:
        await provider.close()
    assert isinstance(result, RetryLater)
    assert "unreachable" in result.reason


async def test_a_hanging_twilio_blocks_nothing_and_the_send_gives_up_after_its_timeout(
    sender: SmsSender, fake: FakeTwilio
) -> None:
    fake.hang_next()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    result = await sender.send(sms("Hello"))
    waited = time.monotonic() - started
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert isinstance(result, RetryLater)
    assert SHORT_TIMEOUT <= waited < SHORT_TIMEOUT + 1
    assert ticks >= 10, "the event loop was blocked while Twilio hung"
    # Twilio may still create it after we gave up: that is why the dispatcher treats it as in doubt.
    fake.release()
    await fake.wait_for_calls(1)
    assert len(fake.messages) == 1


async def test_sends_run_side_by_side_on_one_session(fake: FakeTwilio, tmp_path: Path) -> None:
    sender = sender_to(fake, tmp_path, timeout=10)  # a busy machine must not make a slow answer a failure
    try:
        fake.hang_next(times=3, seconds=0.5)
        started = time.monotonic()
        results = await asyncio.gather(*(sender.send(sms(f"Hello {n}")) for n in range(3)))
        assert all(isinstance(result, Sent) for result in results)
        assert time.monotonic() - started < 0.5 * 3, "the sends waited for each other"
    finally:
        await sender.close()


async def test_delete_sms_deletes_each_message_and_one_already_gone_counts_as_done(
    sender: SmsSender, fake: FakeTwilio
) -> None:
    await sender.send(sms("Hello"))
    ours = fake.messages[0].sid
    hers = [fake.receive(from_=PHONE, body="help"), fake.receive(from_=PHONE, body="1")]
    never_known = new_sid()
    sids = [ours, *hers, never_known]
    assert await sender.send(command({"op": "delete_sms", "sids": sids})) == Sent()
    assert fake.deleted == [ours, *hers]
    assert fake.stored == []
    # Run again (a retry after a crash): every one is gone already, which is done.
    assert await sender.send(command({"op": "delete_sms", "sids": sids})) == Sent()
    assert [call.status for call in fake.calls[-4:]] == [404] * 4


async def test_a_message_too_fresh_to_delete_is_tried_again_later(
    sender: SmsSender, fake: FakeTwilio
) -> None:
    first, second = fake.receive(), fake.receive()
    fake.fail_next(400, code=20009, method="DELETE")
    body = {"op": "delete_sms", "sids": [first, second]}
    assert await sender.send(command(body)) == RetryLater(
        "twilio 400 error 20009 (not deletable yet)", after=60.0
    )
    assert fake.deleted == []
    assert await sender.send(command(body)) == Sent()
    assert fake.deleted == [first, second]


async def test_delete_sms_fails_on_a_passing_error_midway_and_the_retry_finishes(
    sender: SmsSender, fake: FakeTwilio
) -> None:
    sids = [fake.receive() for _ in range(3)]
    await sender.send(command({"op": "delete_sms", "sids": sids[:1]}))  # the first is gone already
    fake.fail_next(500, method="DELETE")
    assert isinstance(await sender.send(command({"op": "delete_sms", "sids": sids})), RetryLater)
    assert await sender.send(command({"op": "delete_sms", "sids": sids})) == Sent()
    assert fake.deleted == sids


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"op": "delete_sms", "sids": ["SM1/../../Calls"]}, id="a SID that is not one"),
        pytest.param({"op": "delete_sms", "sids": [new_sid() + "\n"]}, id="a SID and a newline"),
        pytest.param({"op": "delete_sms", "sids": "SM" + "0" * 32}, id="not a list"),
        pytest.param({"op": "launch"}, id="unknown command"),
        pytest.param({"text": ""}, id="no text"),
    ],
)
async def test_what_cannot_be_sent_fails_without_asking_twilio(
    sender: SmsSender, fake: FakeTwilio, body: dict[str, Any]
) -> None:
    assert isinstance(await sender.send(command(body)), Failed)
    assert fake.calls == []


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """Put the logging configuration back as it was after a test calls configure_logging."""
    root = logging.getLogger()
    handlers = {handler: list(handler.filters) for handler in root.handlers}
    levels = {name: logging.getLogger(name).level for name in ("", *NOISY)}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler, filters in handlers.items():
        handler.filters = filters
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


async def test_no_number_text_or_token_reaches_the_logs(
    sender: SmsSender, fake: FakeTwilio, caplog: pytest.LogCaptureFixture, restored_logging: None
) -> None:
    secrets = ("937711942", "Зулфияканарейка", "canary-pin-5521", fake.auth_token)

    async def talk() -> None:
        await sender.send(sms("Зулфияканарейка canary-pin-5521"))
        fake.fail_next(400, code=21211)  # Twilio's message for this one quotes her number
        await sender.send(sms("Зулфияканарейка canary-pin-5521"))
        fake.fail_next(400, code=21610)
        await sender.send(sms("Зулфияканарейка"))
        fake.hang_next(seconds=SHORT_TIMEOUT * 2)
        await sender.send(sms("canary-pin-5521"))
        await sender.send(command({"op": "delete_sms", "sids": [fake.messages[0].sid]}))

    # As Hamroh runs, even at DEBUG: the SDK's request log is not written at all.
    configure_logging("DEBUG")
    caplog.set_level(logging.DEBUG)
    await talk()
    assert not [r for r in caplog.records if r.name.startswith(("twilio", "bot.channels.twilio"))]
    # Opened all the way: what the SDK logs (URLs and headers) still holds no number, text or token.
    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="bot.channels.twilio.sdk")
    await talk()
    assert any(r.name == "bot.channels.twilio.sdk" for r in caplog.records), "the SDK's log was not captured"
    for secret in secrets:
        assert secret not in caplog.text


# Webhooks: Twilio posts her SMS and delivery reports to the app


@pytest.fixture
def settings_with_sms(tmp_path: Path) -> Settings:
    return twilio_settings(tmp_path)


@pytest.fixture
def app(settings_with_sms: Settings, hamroh: Hamroh) -> FastAPI:
    return create_app(settings_with_sms, hamroh)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def deliver(client: httpx.AsyncClient, request: SignedRequest) -> httpx.Response:
    """Post a signed webhook to the app, at the path Twilio was given."""
    return await client.post(request.path, content=request.body, headers=request.headers)


def inbound(text: str, *, sid: str | None = None, number: str = PHONE, num_media: int = 0) -> dict[str, str]:
    return inbound_sms_form(
        number, text, to=HAMROH_NUMBER, account_sid=ACCOUNT_SID, message_sid=sid, num_media=num_media
    )


def signed(params: dict[str, str], url: str = f"{PUBLIC_URL}{INBOUND_PATH}") -> SignedRequest:
    return signed_request(AUTH_TOKEN, url, params)


async def stored(hamroh: Hamroh) -> dict[str, int]:
    async with transaction(hamroh.engine) as db:
        return {table.__tablename__: await count_rows(db, table) for table in STORED}


async def nothing_stored(hamroh: Hamroh) -> bool:
    return set((await stored(hamroh)).values()) == {0}


async def outbox_rows(hamroh: Hamroh, *, after: int = 0) -> list[OutboxMessage]:
    async with transaction(hamroh.engine) as db:
        query = select(OutboxMessage).where(col(OutboxMessage.id) > after).order_by(col(OutboxMessage.id))
        return list((await db.exec(query)).all())


@dataclass
class Phone:
    """Her basic phone: each SMS she sends reaches the app as Twilio's signed webhook."""

    client: httpx.AsyncClient
    hamroh: Hamroh
    lang: str = "tg"
    number: str = PHONE

    def t(self, msgid: str) -> str:
        return self.hamroh.flows.text(self.lang, msgid)

    async def post(self, text: str, *, sid: str | None = None, num_media: int = 0) -> httpx.Response:
        return await deliver(
            self.client, signed(inbound(text, sid=sid, number=self.number, num_media=num_media))
        )

    async def sends(self, text: str, *, sid: str | None = None, num_media: int = 0) -> list[str]:
        """She texts Hamroh; the SMS queued for her in answer, in order."""
        last = max((row.id or 0 for row in await outbox_rows(self.hamroh)), default=0)
        response = await self.post(text, sid=sid, num_media=num_media)
        assert response.status_code == 200, response.text
        assert (response.text, response.headers["content-type"]) == (EMPTY_TWIML, "text/xml; charset=utf-8")
        rows = await outbox_rows(self.hamroh, after=last)
        assert all(
            row.status == "queued" and self.hamroh.vault.open(row.address) == self.number for row in rows
        )
        return [json.loads(self.hamroh.vault.open(row.body))["text"] for row in rows]


@pytest.fixture
def her(client: httpx.AsyncClient, hamroh: Hamroh) -> Phone:
    return Phone(client, hamroh)


def number_of(reply: str, label: str) -> str:
    """The number an SMS list gives an option."""
    for line in reply.splitlines():
        number, _, text = line.partition(" ")
        if text == label and number.isdigit():
            return number
    raise AssertionError(f"{label!r} not in\n{reply}")


async def test_her_sms_is_answered_through_the_outbox_not_in_the_webhook_answer(her: Phone) -> None:
    (greeting,) = await her.sends("Салом")
    assert "Тоҷикӣ" in greeting
    assert "Русский" in greeting
    (menu,) = await her.sends("1")
    assert menu.startswith(her.t("How can I help you?"))


async def test_the_signature_is_checked_against_the_public_url_not_the_address_it_arrived_at(
    client: httpx.AsyncClient, hamroh: Hamroh
) -> None:
    # Behind the proxy the app sees http://testserver; Twilio signed the public https URL.
    as_seen_by_the_app = signed(inbound("Салом"), url=f"http://testserver{INBOUND_PATH}")
    assert (await deliver(client, as_seen_by_the_app)).status_code == 403
    assert await nothing_stored(hamroh)
    with_a_query = signed(inbound("Салом"), url=f"{PUBLIC_URL}{INBOUND_PATH}?from=twilio")
    assert (await deliver(client, with_a_query)).status_code == 200
    assert (await stored(hamroh))["outbox"] == 1


def unsigned(request: SignedRequest) -> SignedRequest:
    headers = {k: v for k, v in request.headers.items() if k != "x-twilio-signature"}
    return SignedRequest(request.url, request.path, headers, request.body, request.params)


def tampered(request: SignedRequest) -> SignedRequest:
    body = request.body.replace(b"Body=%D0%A1", b"Body=%D0%A2")  # another first letter after signing
    assert body != request.body
    return SignedRequest(request.url, request.path, request.headers, body, request.params)


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(unsigned, id="unsigned"),
        pytest.param(
            lambda r: SignedRequest(
                r.url, r.path, r.headers | {"x-twilio-signature": "AAAA"}, r.body, r.params
            ),
            id="wrong signature",
        ),
        pytest.param(
            lambda r: signed_request("another-accounts-token", r.url, r.params),
            id="signed with another token",
        ),
        pytest.param(
            lambda r: SignedRequest(r.url, STATUS_PATH, r.headers, r.body, r.params),
            id="signed for another URL",
        ),
        pytest.param(tampered, id="changed after signing"),
    ],
)
async def test_a_request_not_signed_by_twilio_is_refused_and_touches_nothing(
    client: httpx.AsyncClient, hamroh: Hamroh, forge: Any
) -> None:
    response = await deliver(client, forge(signed(inbound("Салом"))))
    assert response.status_code == 403
    assert await nothing_stored(hamroh)


async def test_the_same_message_delivered_twice_is_handled_once(her: Phone, hamroh: Hamroh) -> None:
    sid = new_sid()
    assert len(await her.sends("Салом", sid=sid)) == 1
    assert await her.sends("Салом", sid=sid) == []  # Twilio's retry: answered 200, nothing new
    again = new_sid()  # Twilio retried before the first answer came back
    racing = await asyncio.gather(*(her.post("1", sid=again) for _ in range(3)))
    assert [response.status_code for response in racing] == [200] * 3
    counts = await stored(hamroh)
    assert (counts["deliveries"], counts["outbox"]) == (2, 2)


async def test_a_failing_turn_answers_503_leaves_nothing_and_twilio_s_retry_is_handled(
    her: Phone, hamroh: Hamroh, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(db: object) -> tuple[()]:
        raise RuntimeError(f"database went away while {PHONE} wrote Зулфияканарейка")

    monkeypatch.setattr(hamroh.courses, "get", broken)
    sid = new_sid()
    response = await her.post("Зулфияканарейка", sid=sid)
    assert response.status_code == 503
    assert await nothing_stored(hamroh)
    assert "RuntimeError" in caplog.text
    assert PHONE not in caplog.text
    assert "Зулфия" not in caplog.text
    monkeypatch.undo()
    assert len(await her.sends("Зулфияканарейка", sid=sid)) == 1


async def test_a_sender_that_is_not_a_phone_number_gets_nothing_and_leaves_nothing(
    client: httpx.AsyncClient, hamroh: Hamroh
) -> None:
    for sender in ("Tcell", "whatsapp:+992937711942", ""):
        response = await deliver(client, signed(inbound("Салом", number=sender)))
        assert (response.status_code, response.text) == (200, EMPTY_TWIML)
    assert await nothing_stored(hamroh)


async def test_a_picture_without_words_is_answered_that_only_text_is_read(her: Phone) -> None:
    await her.sends("Салом")
    await her.sends("1")
    (reply,) = await her.sends("", num_media=1)
    assert reply.startswith(her.t("I can read only text. Please write, or send a number."))


def without(params: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in params.items() if k not in names}


def raw(body: bytes, content_type: str = "application/x-www-form-urlencoded") -> SignedRequest:
    """A body sent as it is, with a signature header (what it signs cannot matter: it is refused first)."""
    headers = {"content-type": content_type, "x-twilio-signature": "c2lnbmVk"}
    return SignedRequest(f"{PUBLIC_URL}{INBOUND_PATH}", INBOUND_PATH, headers, body, {})


def with_type(request: SignedRequest, content_type: str) -> SignedRequest:
    return SignedRequest(
        request.url,
        request.path,
        request.headers | {"content-type": content_type},
        request.body,
        request.params,
    )


@pytest.mark.parametrize(
    ("make", "status"),
    [
        pytest.param(lambda: with_type(signed(inbound("hi")), "application/json"), 415, id="JSON"),
        pytest.param(
            lambda: with_type(signed(inbound("hi")), "multipart/form-data; boundary=x"), 415, id="multipart"
        ),
        pytest.param(lambda: with_type(signed(inbound("hi")), ""), 415, id="no content type"),
        pytest.param(lambda: signed(inbound("x" * 70_000)), 413, id="over the size limit"),
        pytest.param(lambda: raw(b"From=%2B992937711942&Body"), 400, id="a field without a value"),
        pytest.param(lambda: raw(b"From=%2B992937711942&&Body=hi"), 400, id="an empty field"),
        pytest.param(lambda: raw(b"Body=%FF%FE"), 400, id="not UTF-8"),
        pytest.param(lambda: raw(b"Body=\xff"), 400, id="raw bytes"),
        pytest.param(lambda: raw(b"&".join(b"f%d=1" % n for n in range(500))), 400, id="too many fields"),
        pytest.param(lambda: signed(without(inbound("hi"), "From")), 400, id="no From"),
        pytest.param(lambda: signed(without(inbound("hi"), "MessageSid")), 400, id="no MessageSid"),
        pytest.param(lambda: signed(inbound("hi", sid="SM123")), 400, id="not a MessageSid"),
        pytest.param(
            lambda: signed(inbound("hi", sid=new_sid() + "\n")), 400, id="a MessageSid and a newline"
        ),
        pytest.param(lambda: signed(inbound("hi") | {"NumMedia": "lots"}), 400, id="NumMedia not a number"),
    ],
)
async def test_bad_input_is_refused_with_a_4xx_and_touches_nothing(
    client: httpx.AsyncClient, hamroh: Hamroh, make: Any, status: int
) -> None:
    response = await deliver(client, make())
    assert response.status_code == status, response.text
    assert await nothing_stored(hamroh)


class MultiForm(dict[str, list[str]]):
    """A form with repeated fields, as RequestValidator reads one."""

    def getlist(self, name: str) -> list[str]:
        return self[name]


async def test_a_field_given_twice_is_refused(client: httpx.AsyncClient, hamroh: Hamroh) -> None:
    params = inbound("hi")
    request = signed(params)
    body = request.body + b"&From=%2B992900000002"
    # Signed over both values, as Twilio would sign such a form: only the repetition is wrong.
    multi = MultiForm({k: [v] for k, v in params.items()} | {"From": [PHONE, "+992900000002"]})
    signature = RequestValidator(AUTH_TOKEN).compute_signature(request.url, multi)
    headers = request.headers | {"x-twilio-signature": signature}
    response = await client.post(request.path, content=body, headers=headers)
    assert response.status_code == 400
    assert "From" in response.json()["detail"]
    assert await nothing_stored(hamroh)


async def test_an_oversized_body_without_a_length_is_cut_off_too(
    client: httpx.AsyncClient, hamroh: Hamroh
) -> None:
    request = signed(inbound("x" * 70_000))

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(request.body), 4096):
            yield request.body[start : start + 4096]

    response = await client.post(request.path, content=chunks(), headers=request.headers)
    assert response.status_code == 413
    assert await nothing_stored(hamroh)


async def test_a_sender_that_hangs_up_mid_body_gets_a_400_and_leaves_no_traceback(
    tmp_path: Path, hamroh: Hamroh, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(twilio_settings(tmp_path), hamroh)
    request = signed(inbound("Салом"))
    arrivals: list[dict[str, Any]] = [
        {"type": "http.request", "body": request.body[:20], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return arrivals.pop(0) if arrivals else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    url = httpx.URL(request.url)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": url.scheme,
        "path": request.path,
        "raw_path": request.path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in request.headers.items()]
        + [(b"host", url.host.encode())],
        "server": (url.host, url.port or 443),
        "client": ("127.0.0.1", 50000),
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 400
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert await nothing_stored(hamroh)


async def test_without_twilio_settings_there_are_no_sms_webhooks(tmp_path: Path, hamroh: Hamroh) -> None:
    app = create_app(twilio_settings(tmp_path, twilio_account_sid=None, twilio_auth_token=None), hamroh)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        response = await deliver(client, signed(inbound("Салом")))
    assert response.status_code == 404


# Stop words, start words and help, through the webhook


@pytest.mark.parametrize(
    ("language", "lang", "stop"),
    [
        pytest.param("1", "tg", "STOP", id="English"),
        pytest.param("1", "tg", "стоп", id="Tajik"),
        pytest.param("2", "ru", "СТОП", id="Russian"),
        pytest.param("2", "ru", "Stop", id="English in Russian"),
    ],
)
async def test_stop_gives_one_confirmation_and_then_nothing_more_is_queued(
    her: Phone, hamroh: Hamroh, language: str, lang: str, stop: str
) -> None:
    await her.sends("Салом")
    her.lang = lang
    await her.sends(language)
    (confirmation,) = await her.sends(stop)
    assert confirmation.startswith(her.t("Done. You will get no more messages. Write START to come back."))
    for text in ("1", "0", "help", "меню", stop, "Зулфияканарейка"):
        assert await her.sends(text) == [], text
    async with transaction(hamroh.engine) as db:
        (contact,) = (await db.exec(select(Contact))).all()
    assert contact.opted_out


@pytest.mark.parametrize(
    "start", ["START", "старт", "начать", "оғоз", "огоз", "ogoz"], ids=lambda word: word
)  # "огоз" and "ogoz": Tajik typed without Tajik letters
async def test_a_start_word_resumes_messages(her: Phone, start: str) -> None:
    await her.sends("Салом")
    await her.sends("1")
    await her.sends("STOP")
    (welcome_back,) = await her.sends(start)
    assert welcome_back.startswith(her.t("Welcome back. Messages are on again."))
    (menu,) = await her.sends("0")
    assert menu.startswith(her.t("How can I help you?"))


@pytest.mark.parametrize(
    ("language", "lang", "word"),
    [
        pytest.param("1", "tg", "HELP", id="English"),
        pytest.param("1", "tg", "ёрӣ", id="Tajik"),
        pytest.param("1", "tg", "кумак", id="Tajik without Tajik letters"),
        pytest.param("2", "ru", "помощь", id="Russian"),
    ],
)
async def test_help_answers(her: Phone, language: str, lang: str, word: str) -> None:
    await her.sends("Салом")
    her.lang = lang
    await her.sends(language)
    (reply,) = await her.sends(word)
    assert reply.startswith(her.t(her.hamroh.flows.node("main.help").texts[0]))
    assert re.findall(r"\d+", reply)[0] == "112"


async def test_after_choosing_latin_letters_her_sms_are_gsm7(her: Phone) -> None:
    await her.sends("Салом")
    (menu,) = await her.sends("1")
    assert sms_segments(menu).encoding == "ucs2"
    (settings,) = await her.sends(number_of(menu, her.t("Language and settings")))
    (letters,) = await her.sends(number_of(settings, her.t("SMS letters")))
    (letters,) = await her.sends(number_of(letters, her.t("More")))
    (done,) = await her.sends(number_of(letters, her.t("Latin letters")))
    (menu,) = await her.sends("0")
    assert [sms_segments(text).encoding for text in (done, menu)] == ["gsm7", "gsm7"]
    assert menu.startswith("Chi khel")  # "Чӣ хел ..." in Latin letters
    assert sms_segments(menu).segments == 1


# Delivery reports


async def sent_reply(her: Phone, hamroh: Hamroh) -> tuple[str, OutboxMessage]:
    """She wrote; the reply was sent (as the dispatcher would record it) with a Twilio SID."""
    await her.sends("Салом")
    (row,) = await outbox_rows(hamroh)
    sid = new_sid()
    async with transaction(hamroh.engine) as db:
        await db.exec(
            sa.update(OutboxMessage)
            .where(col(OutboxMessage.id) == row.id)
            .values(provider_id=sid, status="sent")
        )
    return sid, row


def report(sid: str, status: str, error_code: str | None = None) -> SignedRequest:
    form = status_callback_form(
        sid, status, account_sid=ACCOUNT_SID, to=PHONE, from_=HAMROH_NUMBER, error_code=error_code
    )
    return signed(form, url=f"{PUBLIC_URL}{STATUS_PATH}")


async def test_a_delivery_report_is_recorded_on_its_outbox_row(
    her: Phone, hamroh: Hamroh, client: httpx.AsyncClient
) -> None:
    sid, _ = await sent_reply(her, hamroh)
    for status, code in (("sent", None), ("undelivered", "30003"), ("delivered", None)):
        response = await deliver(client, report(sid, status, code))
        assert (response.status_code, response.text) == (200, EMPTY_TWIML)
        (row,) = await outbox_rows(hamroh)
        assert (row.delivery, row.error_code) == (status, code)


async def test_opted_out_at_the_carrier_means_no_more_sms_until_she_starts_again(
    her: Phone, hamroh: Hamroh, client: httpx.AsyncClient
) -> None:
    sid, _ = await sent_reply(her, hamroh)
    assert (await deliver(client, report(sid, "failed", "21610"))).status_code == 200
    async with transaction(hamroh.engine) as db:
        (contact,) = (await db.exec(select(Contact))).all()
    assert contact.opted_out
    assert await her.sends("1") == []
    (welcome_back,) = await her.sends("START")
    assert welcome_back.startswith(her.t("Welcome back. Messages are on again."))


async def test_a_report_for_a_message_we_do_not_know_is_acknowledged(
    client: httpx.AsyncClient, hamroh: Hamroh
) -> None:
    response = await deliver(client, report(new_sid(), "delivered"))
    assert response.status_code == 200
    assert await nothing_stored(hamroh)


@pytest.mark.parametrize(
    ("make", "status"),
    [
        pytest.param(lambda sid: report(sid, "exploded"), 400, id="unknown status"),
        pytest.param(lambda sid: report(sid, "failed", "boom"), 400, id="ErrorCode not a number"),
        pytest.param(
            lambda sid: signed(
                without(status_callback_form(sid, "delivered", account_sid=ACCOUNT_SID), "MessageSid"),
                url=f"{PUBLIC_URL}{STATUS_PATH}",
            ),
            400,
            id="no MessageSid",
        ),
        pytest.param(lambda sid: unsigned(report(sid, "delivered")), 403, id="unsigned"),
        pytest.param(
            lambda sid: signed(status_callback_form(sid, "delivered", account_sid=ACCOUNT_SID)),
            403,
            id="signed for the inbound URL",
        ),
    ],
)
async def test_a_bad_delivery_report_changes_nothing(
    her: Phone, hamroh: Hamroh, client: httpx.AsyncClient, make: Any, status: int
) -> None:
    sid, _ = await sent_reply(her, hamroh)
    request = make(sid)
    response = await client.post(STATUS_PATH, content=request.body, headers=request.headers)
    assert response.status_code == status, response.text
    (row,) = await outbox_rows(hamroh)
    assert (row.delivery, row.error_code) == (None, None)
