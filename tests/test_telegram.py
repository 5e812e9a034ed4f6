"""Telegram end to end: updates through the webhook (and polling), messages out through the real SDK.

The webhook is driven through the FastAPI app; the sender, set_webhook and poll speak HTTP to a fake Bot
API server (tests/fakes/telegram_api.py) through python-telegram-bot itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from api.app import create_app
from bot.channels.telegram import (
    CALLBACK_DATA_LIMIT,
    SetupError,
    TelegramSender,
    render,
    set_webhook,
)
from bot.channels.telegram_updates import poll
from bot.config import Settings
from bot.conversation.model import Option, Reply
from bot.logs import install_redaction
from bot.senders import Failed, Outgoing, RetryLater, Sent
from bot.service import Hamroh, count_rows
from bot.store import ChatMessage, Contact, ConversationState, Delivery, OutboxMessage, RequestLogEntry
from bot.store.db import transaction
from tests.conftest import settings_for_tests
from tests.fakes.telegram_api import MEDIA_KINDS, TOKEN, FakeTelegram, Her

SECRET = "webhook-secret_0123456789"
HOOK = "/webhooks/telegram"
SIGNED = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "content-type": "application/json"}
STORED = (Contact, ConversationState, Delivery, OutboxMessage, ChatMessage, RequestLogEntry)
HER_CHAT = 100001
ADDRESS = f"tg:{HER_CHAT}"


# --- fixtures and helpers -----------------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


def telegram_settings(
    tmp_path: Path, database_url: str, fake: FakeTelegram, *, token: str | None = None, **extra: Any
) -> Settings:
    return settings_for_tests(
        tmp_path,
        database_url,
        telegram_token=token or fake.token,
        telegram_secret=SECRET,
        telegram_api_url=fake.api_url,
        **extra,
    )


@pytest.fixture
def tg_settings(tmp_path: Path, sqlite_url: str, fake: FakeTelegram) -> Settings:
    return telegram_settings(tmp_path, sqlite_url, fake, public_url="https://hamroh.example.org")


@dataclass
class Webhook:
    """Telegram's side of the webhook: posts updates as Telegram would."""

    client: httpx.AsyncClient
    hamroh: Hamroh

    async def post(
        self, update: Any, *, secret: str | bytes | None = SECRET, **kwargs: Any
    ) -> httpx.Response:
        headers: dict[str, str | bytes] = {"content-type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        if "content" in kwargs:
            return await self.client.post(HOOK, headers={**headers, **kwargs.pop("headers", {})}, **kwargs)
        return await self.client.post(HOOK, headers=headers, content=json.dumps(update))

    async def delivers(self, update: dict[str, Any]) -> None:
        response = await self.post(update)
        assert response.status_code == 200, response.text


@pytest.fixture
async def webhook(tg_settings: Settings, hamroh: Hamroh) -> AsyncIterator[Webhook]:
    app = create_app(tg_settings, hamroh)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hamroh.test") as client:
        yield Webhook(client, hamroh)


@pytest.fixture
def her() -> Her:
    return Her(chat_id=HER_CHAT)


@pytest.fixture
async def sender(fake: FakeTelegram) -> AsyncIterator[TelegramSender]:
    # Short timeouts: a hung Bot API must turn into a retry within the test's patience.
    created = TelegramSender(fake.token, api_url=fake.api_url, connect_timeout=1.0, read_timeout=0.5)
    yield created
    await created.close()


async def counts(hamroh: Hamroh) -> dict[str, int]:
    async with transaction(hamroh.engine) as db:
        return {table.__tablename__: await count_rows(db, table) for table in STORED}


async def outbox(hamroh: Hamroh) -> list[tuple[OutboxMessage, dict[str, Any]]]:
    """Every outbox row in the order written, with its body opened."""
    async with transaction(hamroh.engine) as db:
        rows = (await db.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all()
    return [(row, json.loads(hamroh.vault.open(row.body))) for row in rows]


async def her_contact(hamroh: Hamroh) -> Contact:
    async with transaction(hamroh.engine) as db:
        contact = (
            await db.exec(select(Contact).where(Contact.fingerprint == hamroh.vault.fingerprint(ADDRESS)))
        ).first()
    assert contact is not None
    return contact


def buttons(body: dict[str, Any]) -> list[dict[str, str]]:
    return [b for row in body.get("reply_markup", {}).get("inline_keyboard", []) for b in row]


def message(body: dict[str, Any], *, kind: str = "reply", address: str = ADDRESS) -> Outgoing:
    return Outgoing(id=1, channel="telegram", address=address, body=body, kind=kind, contact_id=1)


def nothing_stored(rows: dict[str, int]) -> bool:
    return all(count == 0 for count in rows.values())


# --- the webhook ----------------------------------------------------------------------------------------


async def test_without_the_secret_nothing_is_read_or_written(webhook: Webhook, her: Her) -> None:
    assert (await webhook.post(her.says("Салом"), secret=None)).status_code == 403
    assert (await webhook.post(her.says("Салом"), secret="guess")).status_code == 403
    assert (await webhook.post(her.says("Салом"), secret="ҳа".encode())).status_code == 403  # not ASCII
    # The body is not even looked at: garbage of the wrong type is still just "forbidden".
    garbage = await webhook.post(None, secret=None, content=b"\xff{", headers={"content-type": "text/plain"})
    assert garbage.status_code == 403
    assert nothing_stored(await counts(webhook.hamroh))


async def test_her_first_message_is_greeted_with_buttons_waiting_in_the_outbox(
    webhook: Webhook, her: Her
) -> None:
    update = her.says("Салом")
    response = await webhook.post(update)
    assert response.status_code == 200
    assert response.json() == {"ok": True}  # nothing Telegram could take for a Bot API call

    ((row, greeting),) = await outbox(webhook.hamroh)
    assert (row.status, row.kind, row.channel) == ("queued", "reply", "telegram")
    assert str(HER_CHAT).encode() not in row.address  # sealed
    assert [b["text"] for b in buttons(greeting)] == ["Тоҷикӣ", "Русский"]
    assert all(len(b["callback_data"].encode()) <= CALLBACK_DATA_LIMIT for b in buttons(greeting))
    rows = await counts(webhook.hamroh)
    assert (rows["contacts"], rows["deliveries"], rows["chat_messages"]) == (1, 1, 1)  # her message id kept


async def test_every_button_she_is_shown_fits_telegrams_callback_limit(webhook: Webhook, her: Her) -> None:
    await webhook.delivers(her.says("Салом"))
    await webhook.delivers(her.presses("lang:tg"))
    for text in ("1", "алимент", "кӯмак", "0", "2", "3"):
        await webhook.delivers(her.says(text))
    shown = [b for _, body in await outbox(webhook.hamroh) for b in buttons(body)]
    assert len(shown) > 10
    assert max(len(b["callback_data"].encode()) for b in shown) <= CALLBACK_DATA_LIMIT


async def test_the_same_update_twice_is_one_turn(webhook: Webhook, her: Her) -> None:
    update = her.says("Салом")
    await webhook.delivers(update)
    await webhook.delivers(update)  # Telegram did not hear our 200 and delivers it again
    rows = await counts(webhook.hamroh)
    assert (rows["deliveries"], rows["outbox"], rows["chat_messages"]) == (1, 1, 1)


async def test_a_pressed_button_runs_a_turn_and_is_answered_before_the_replies(
    webhook: Webhook, her: Her
) -> None:
    await webhook.delivers(her.says("Салом"))
    press = her.presses("lang:tg")
    await webhook.delivers(press)
    await webhook.delivers(press)  # a redelivery: neither a second turn nor a second answer

    written = await outbox(webhook.hamroh)
    kinds = [row.kind for row, _ in written]
    assert kinds == ["reply", "command", "reply"]  # greeting; then, in one turn, the answer and the menu
    menu = written[-1][1]
    assert "Ҳуқуқҳои шумо" in [b["text"] for b in buttons(menu)]  # she chose Tajik
    answer, body = written[1]
    assert body == {"op": "answer_callback", "id": press["callback_query"]["id"]}
    assert answer.ephemeral
    assert answer.status == "queued"
    assert answer.contact_id == (await her_contact(webhook.hamroh)).id  # erased with her, if she asks


async def test_what_is_not_text_gets_a_kind_reply_in_her_language(webhook: Webhook, her: Her) -> None:
    await webhook.delivers(her.says("Салом"))
    await webhook.delivers(her.presses("lang:tg"))
    flows = webhook.hamroh.flows
    kind_words = flows.text("tg", flows.strings["not_text"])
    for kind in MEDIA_KINDS:
        before = len(await outbox(webhook.hamroh))
        await webhook.delivers(her.sends(kind))
        replies = (await outbox(webhook.hamroh))[before:]
        assert [body["text"] for _, body in replies] == [kind_words], kind


async def test_her_words_beside_a_photo_are_read_as_her_words(webhook: Webhook, her: Her) -> None:
    await webhook.delivers(her.says("Салом"))
    await webhook.delivers(her.presses("lang:tg"))
    before = len(await outbox(webhook.hamroh))
    await webhook.delivers(her.sends("photo", caption="алимент"))
    ((_, reply),) = (await outbox(webhook.hamroh))[before:]
    flows = webhook.hamroh.flows
    assert reply["text"] != flows.text("tg", flows.strings["not_text"])
    assert reply["text"] != flows.text("tg", flows.strings["not_understood"])


async def test_updates_that_are_not_hers_arrive_without_harm(webhook: Webhook, her: Her) -> None:
    for update in (
        her.edits("Салом"),
        her.posts_in_channel("Салом"),
        her.edits_channel_post("Салом"),
        her.says_in_group("Салом"),
        her.inline_query("Салом"),
        her.poll_update(),
        her.unknown_update(),
        {"update_id": 999_001},
    ):
        response = await webhook.post(update)
        assert response.status_code == 200, update
    assert nothing_stored(await counts(webhook.hamroh))


async def test_an_update_with_a_chat_id_that_is_no_id_is_dropped_not_retried(
    webhook: Webhook, her: Her
) -> None:
    # Telegram retries every non-2xx answer; this one could never succeed, so it is a 200 and nothing.
    update = her.says("Салом")
    update["message"]["chat"]["id"] = "not-a-number"
    assert (await webhook.post(update)).status_code == 200
    assert nothing_stored(await counts(webhook.hamroh))


async def test_blocking_and_unblocking_the_bot_decides_whether_she_is_written_to(
    webhook: Webhook, her: Her
) -> None:
    await webhook.delivers(her.says("Салом"))
    assert (await her_contact(webhook.hamroh)).reachable
    await webhook.delivers(her.blocks_the_bot())
    assert not (await her_contact(webhook.hamroh)).reachable
    await webhook.delivers(her.unblocks_the_bot())
    assert (await her_contact(webhook.hamroh)).reachable
    assert (await counts(webhook.hamroh))["outbox"] == 1  # only the greeting: blocking is not a message


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b'{"update_id": 1, "message": ', "application/json", 400),  # malformed JSON
        (b"\xff\xfe\x00", "application/json", 400),  # not UTF-8 either
        (b'{"update_id": 1}', "text/plain", 415),
        (b'{"update_id": 1}', "", 415),
        (b"[" * 100_000, "application/json", 413),  # above HAMROH_MAX_REQUEST_BYTES
        (b'[{"update_id": 1}]', "application/json", 400),  # a list is not an update
        (b'"update"', "application/json", 400),
        (b'{"message": {"text": "hi"}}', "application/json", 400),  # no update_id
        (b'{"update_id": "1"}', "application/json", 400),
        (b'{"update_id": 1, "message": "hi"}', "application/json", 400),  # not Telegram's shape
        (b'{"update_id": 1, "message": {"message_id": 1}}', "application/json", 400),
        (b"[" * 5_000 + b"]" * 5_000, "application/json", 400),  # nested beyond reason
    ],
)
async def test_a_body_that_is_not_one_update_is_refused_and_nothing_written(
    webhook: Webhook, content: bytes, content_type: str, status: int
) -> None:
    response = await webhook.post(None, content=content, headers={"content-type": content_type})
    assert response.status_code == status
    assert "hi" not in response.text  # her words are never echoed back
    assert nothing_stored(await counts(webhook.hamroh))


async def test_a_failed_turn_is_a_503_so_telegram_delivers_it_again(
    webhook: Webhook, her: Her, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: Hamroh, inbound: Any) -> Any:
        raise RuntimeError("the database is away")

    update = her.says("Салом")
    with monkeypatch.context() as patched:
        patched.setattr(Hamroh, "handle", broken)
        response = await webhook.post(update)
    assert response.status_code == 503
    assert "database" not in response.text
    assert nothing_stored(await counts(webhook.hamroh))

    await webhook.delivers(update)  # Telegram's retry: handled once, as if the first had not happened
    rows = await counts(webhook.hamroh)
    assert (rows["deliveries"], rows["outbox"]) == (1, 1)


async def test_without_a_telegram_token_there_is_no_webhook(settings: Settings, hamroh: Hamroh) -> None:
    app = create_app(settings, hamroh)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post(HOOK, headers=SIGNED, content=b"{}")
    assert response.status_code in (404, 405)


# --- the sender --------------------------------------------------------------------------------------


async def test_a_reply_goes_out_with_its_buttons(sender: TelegramSender, fake: FakeTelegram) -> None:
    body = render(Reply("Салом! Чӣ тавр кӯмак кунам?", (Option("main.menu:legal", "Ҳуқуқҳо"),), menu="Меню"))
    result = await sender.send(message(body))
    assert result == Sent(provider_ids=("1",))
    (call,) = fake.calls_to("sendMessage")
    assert (call.chat_id, call.text) == (HER_CHAT, "Салом! Чӣ тавр кӯмак кунам?")
    assert call.params["reply_markup"] == body["reply_markup"]
    assert (await sender.send(message({"text": "Боз"}))) == Sent(provider_ids=("2",))  # ids count up
    assert sender.credential == TOKEN.split(":")[0]
    assert sender.cost(message(body)) == 1


async def test_a_long_text_leaves_in_pieces_with_the_buttons_on_the_last(
    sender: TelegramSender, fake: FakeTelegram
) -> None:
    text = "\n\n".join(f"Қисми {n}. " + "Ҳуқуқҳои шумо. " * 60 for n in range(12))
    body = render(Reply(text, (Option("main.menu:legal", "Ҳуқуқҳо"),)))
    assert sender.cost(message(body)) == 3
    result = await sender.send(message(body))
    calls = fake.calls_to("sendMessage")
    assert isinstance(result, Sent)
    assert len(result.provider_ids) == len(calls) == 3
    assert all(len(c.text.encode("utf-16-le")) // 2 <= 4096 for c in calls)
    assert ["reply_markup" in c.params for c in calls] == [False, False, True]
    assert " ".join(c.text for c in calls).split() == text.split()  # nothing lost, nothing reordered


async def test_flood_control_is_a_retry_after_the_time_telegram_asks(
    sender: TelegramSender, fake: FakeTelegram
) -> None:
    fake.flood(retry_after=7)
    assert await sender.send(message({"text": "Салом"})) == RetryLater("flood control (429)", after=7.0)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_server_error_is_a_retry(sender: TelegramSender, fake: FakeTelegram, status: int) -> None:
    fake.server_error(status=status)
    result = await sender.send(message({"text": "Салом"}))
    assert isinstance(result, RetryLater)
    assert result.after is None


async def test_a_hung_bot_api_is_a_retry_after_the_timeout(
    sender: TelegramSender, fake: FakeTelegram
) -> None:
    fake.hang()
    started = time.monotonic()
    result = await sender.send(message({"text": "Салом"}))
    assert result == RetryLater("timed out")
    assert time.monotonic() - started < 3
    fake.release()


async def test_an_unreachable_bot_api_is_a_retry() -> None:
    sender = TelegramSender(TOKEN, api_url="http://127.0.0.1:9", connect_timeout=1.0, read_timeout=1.0)
    try:
        result = await sender.send(message({"text": "Салом"}))
    finally:
        await sender.close()
    assert isinstance(result, RetryLater)


async def test_when_she_blocked_the_bot_she_is_unreachable(
    sender: TelegramSender, fake: FakeTelegram
) -> None:
    fake.block()
    result = await sender.send(message({"text": "Салом"}))
    assert isinstance(result, Failed)
    assert result.unreachable
    assert "blocked" in result.reason


async def test_a_bad_request_is_a_permanent_failure_with_a_reason_that_tells_nothing_of_her(
    sender: TelegramSender, fake: FakeTelegram
) -> None:
    fake.bad_request("Bad Request: chat not found")
    result = await sender.send(message({"text": "Салом, ман Зарина"}))
    assert isinstance(result, Failed)
    assert not result.unreachable
    assert "chat not found" in result.reason.lower()
    for secret in (str(HER_CHAT), "Зарина", TOKEN, TOKEN.split(":")[1]):
        assert secret not in result.reason


async def test_a_rejected_token_keeps_the_messages_waiting(fake: FakeTelegram) -> None:
    wrong = "7000000002:AAHsomeOtherTokenThatTelegramRejects_xyz"
    sender = TelegramSender(wrong, api_url=fake.api_url)
    try:
        result = await sender.send(message({"text": "Салом"}))
    finally:
        await sender.close()
    assert isinstance(result, RetryLater)
    assert result.after
    assert wrong not in result.reason
    assert "7000000002" not in result.reason


async def test_what_cannot_be_sent_fails_without_a_call(sender: TelegramSender, fake: FakeTelegram) -> None:
    assert isinstance(await sender.send(message({"text": "  "})), Failed)
    assert isinstance(await sender.send(message({"text": "Салом"}, address="+992900000001")), Failed)
    assert isinstance(await sender.send(message({"op": "launch"}, kind="command")), Failed)
    assert isinstance(
        await sender.send(message({"op": "clear_chat", "message_ids": "all"}, kind="command")), Failed
    )
    assert fake.calls == []


async def test_clearing_her_chat_deletes_in_hundreds(sender: TelegramSender, fake: FakeTelegram) -> None:
    ids = list(range(1, 251))
    result = await sender.send(message({"op": "clear_chat", "message_ids": ids}, kind="command"))
    assert result == Sent()
    calls = fake.calls_to("deleteMessages")
    assert [c.params["message_ids"] for c in calls] == [ids[:100], ids[100:200], ids[200:]]
    assert {c.chat_id for c in calls} == {HER_CHAT}
    assert await sender.send(message({"op": "clear_chat", "message_ids": []}, kind="command")) == Sent()
    assert len(fake.calls_to("deleteMessages")) == 3  # nothing to delete, nothing asked


async def test_a_pressed_button_is_answered_even_when_it_is_too_late(
    sender: TelegramSender, fake: FakeTelegram
) -> None:
    answer = message({"op": "answer_callback", "id": "4242"}, kind="command")
    assert await sender.send(answer) == Sent()
    assert fake.calls_to("answerCallbackQuery")[0].params["callback_query_id"] == "4242"
    fake.bad_request("Bad Request: query is too old and response timeout expired or query ID is invalid")
    assert await sender.send(answer) == Sent()  # her reply went anyway; nothing to retry
    fake.bad_request("Bad Request: something else")
    assert isinstance(await sender.send(answer), Failed)


# --- logs ------------------------------------------------------------------------------------------------


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.name, self.format(record)))


@pytest.fixture
def every_log() -> Iterator[tuple[Capture, Capture]]:
    """Every logger at DEBUG; one capture as written (first), one through the redaction (second)."""
    raw, redacted = Capture(), Capture()
    install_redaction(redacted)
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    levels = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(raw)
    root.addHandler(redacted)
    try:
        yield raw, redacted
    finally:
        root.removeHandler(redacted)
        root.removeHandler(raw)
        for lg, level in levels:
            lg.setLevel(level)


async def test_the_token_never_reaches_the_logs(
    every_log: tuple[Capture, Capture],
    sender: TelegramSender,
    fake: FakeTelegram,
    webhook: Webhook,
    her: Her,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw, redacted = every_log
    text = "Салом, ман Зарина"
    await sender.send(message(render(Reply(text, (Option("main.menu:legal", "Ҳуқуқҳо"),)))))
    for fault in (fake.flood, fake.server_error, fake.block, fake.bad_request, fake.hang):
        fault()
        await sender.send(message({"text": text}))
    fake.release()
    await sender.send(message({"op": "clear_chat", "message_ids": [1, 2]}, kind="command"))
    await webhook.delivers(her.says(text))

    async def broken(self: Hamroh, inbound: Any) -> Any:
        raise RuntimeError(f"boom {TOKEN} {text}")

    monkeypatch.setattr(Hamroh, "handle", broken)
    assert (await webhook.post(her.says(text))).status_code == 503

    everything = "\n".join(line for _, line in redacted.lines)
    assert "httpx" in everything
    assert "sendMessage" in everything
    assert TOKEN not in everything
    assert TOKEN.split(":")[1] not in everything
    ours = "\n".join(line for name, line in raw.lines if name.startswith(("bot.", "api.")))
    assert "api.telegram" in ours  # the failed turn was logged, by class only
    for secret in (TOKEN.split(":")[1], text, str(HER_CHAT), SECRET):
        assert secret not in ours


# --- set-up and polling ---------------------------------------------------------------------------------


async def test_the_webhook_is_registered_with_its_secret(tg_settings: Settings, fake: FakeTelegram) -> None:
    await set_webhook(tg_settings)
    assert fake.webhook is not None
    assert fake.webhook["url"] == "https://hamroh.example.org/webhooks/telegram"
    assert fake.webhook["secret_token"] == SECRET
    assert fake.webhook["allowed_updates"] == [
        "message",
        "edited_message",
        "callback_query",
        "my_chat_member",
    ]
    assert fake.webhook["drop_pending_updates"] is False


async def test_a_rejected_token_stops_set_up_with_a_message_without_it(
    tmp_path: Path, sqlite_url: str, fake: FakeTelegram
) -> None:
    wrong = "7000000002:AAHsomeOtherTokenThatTelegramRejects_xyz"
    settings = telegram_settings(
        tmp_path, sqlite_url, fake, token=wrong, public_url="https://hamroh.example.org"
    )
    with pytest.raises(SetupError) as raised:
        await set_webhook(settings)
    assert wrong not in str(raised.value)
    assert "rejected" in str(raised.value)


async def until(condition: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, "it did not happen in time"
        await asyncio.sleep(0.02)


async def test_polling_feeds_updates_through_the_same_path_as_the_webhook(
    tg_settings: Settings, hamroh: Hamroh, fake: FakeTelegram, her: Her
) -> None:
    fake.webhook = {"url": "https://old.example.org/webhooks/telegram"}  # left from a deployment
    first, second = her.says("Салом"), her.presses("lang:tg")
    fake.push_update(first)
    fake.push_update(second)
    stop = asyncio.Event()
    polling = asyncio.create_task(poll(tg_settings, hamroh, stop=stop, long_poll_seconds=1))

    async def both_handled() -> bool:
        return (await counts(hamroh))["deliveries"] == 2

    await until(both_handled)
    await until(lambda: _polled_past(fake, second["update_id"]))
    stop.set()
    await asyncio.wait_for(polling, 5)

    assert fake.calls[0].method == "deleteWebhook"
    assert fake.webhook is None
    kinds = [row.kind for row, _ in await outbox(hamroh)]
    assert kinds == ["reply", "command", "reply"]  # greeting; the answer to her button, then the menu


async def _polled_past(fake: FakeTelegram, update_id: int) -> bool:
    return any(c.params.get("offset") == update_id + 1 for c in fake.calls_to("getUpdates"))


async def test_polling_does_not_confirm_an_update_whose_turn_failed(
    tg_settings: Settings, hamroh: Hamroh, fake: FakeTelegram, her: Her, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Hamroh.handle
    failures = [RuntimeError("database away")]

    async def flaky(self: Hamroh, inbound: Any) -> Any:
        if failures:
            raise failures.pop()
        return await real(self, inbound)

    monkeypatch.setattr(Hamroh, "handle", flaky)
    update_id = fake.push_update(her.says("Салом"))
    stop = asyncio.Event()
    polling = asyncio.create_task(poll(tg_settings, hamroh, stop=stop, long_poll_seconds=1, retry_delay=0.05))

    async def handled() -> bool:
        return (await counts(hamroh))["deliveries"] == 1

    await until(handled)
    stop.set()
    await asyncio.wait_for(polling, 5)
    offsets = [c.params.get("offset") for c in fake.calls_to("getUpdates")]
    assert offsets[:2] == [None, None]  # after the failure it asked from the same place again
    assert update_id + 1 not in offsets[:2]
    assert (await counts(hamroh))["outbox"] == 1


async def test_polling_stops_at_once_even_in_a_long_poll(
    tg_settings: Settings, hamroh: Hamroh, fake: FakeTelegram
) -> None:
    stop = asyncio.Event()
    polling = asyncio.create_task(poll(tg_settings, hamroh, stop=stop, long_poll_seconds=25))
    await fake.wait_for("deleteWebhook")
    await asyncio.sleep(0.2)  # now inside a 25-second getUpdates
    started = time.monotonic()
    stop.set()
    await asyncio.wait_for(polling, 5)
    assert time.monotonic() - started < 2
