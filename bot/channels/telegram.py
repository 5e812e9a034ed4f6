"""Telegram: replies as text with an inline keyboard whose buttons carry option keys, never labels.

Also the way out to the Bot API (`TelegramSender`, through python-telegram-bot's `Bot`) and the webhook's
registration. Reading updates is in `telegram_updates`, which needs the service (the service needs us).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from telegram import Bot, InlineKeyboardMarkup
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import BaseRequest, HTTPXRequest

from bot import outbox
from bot.channels.telegram_http import AiohttpRequest
from bot.config import ConfigError, Settings
from bot.conversation.model import MENU_KEY, Channel, Reply
from bot.conversation.text import split_for_telegram
from bot.logs import redact
from bot.senders import Failed, Outgoing, RetryLater, SendResult, Sent
from bot.store.crypto import Vault

# python-telegram-bot 22 warns (a DeprecationWarning) each time it builds a RetryAfter unless the program
# opts into `retry_after` as a timedelta; we read both forms, so opt in (an operator may still say otherwise).
os.environ.setdefault("PTB_TIMEDELTA", "true")

CALLBACK_DATA_LIMIT = 64  # bytes, Telegram's limit for callback_data
TEXT_LIMIT = 4096  # UTF-16 units, Telegram's limit for a message's text
DELETE_LIMIT = 100  # message ids one deleteMessages call takes
WEBHOOK_PATH = "/webhooks/telegram"
ALLOWED_UPDATES = ("message", "edited_message", "callback_query", "my_chat_member")
TOKEN_REJECTED_WAIT = 60.0  # seconds: a wrong token is an operator's fix; keep the messages meanwhile
_STALE_QUERY = ("query is too old", "query id is invalid")


def render(reply: Reply) -> dict[str, Any]:
    """The message as the Bot API takes it: text and an inline keyboard (one button a row)."""
    rows = [[{"text": o.label, "callback_data": o.key}] for o in reply.options]
    if reply.menu:
        rows.append([{"text": reply.menu, "callback_data": MENU_KEY}])
    message: dict[str, Any] = {"text": reply.text}
    if rows:
        message["reply_markup"] = {"inline_keyboard": rows}
    return message


def answer_row(
    vault: Vault, *, contact_id: int | None, sealed_address: bytes, callback_query_id: str, now: datetime
) -> dict[str, Any]:
    """An outbox command (`bot.outbox.values`) that answers a pressed button, so her app stops showing it
    as loading.

    Ephemeral: once Telegram took it, nothing of it is worth keeping (and it holds her sealed chat id).
    """
    return outbox.values(
        vault,
        contact_id=contact_id,
        channel="telegram",
        sealed_address=sealed_address,
        body={"op": "answer_callback", "id": callback_query_id},
        now=now,
        kind="command",
        ephemeral=True,
    )


def bot_id(token: str) -> str:
    """The public part of a bot token: the bot's numeric id (digits before ':'). ValueError otherwise."""
    head, colon, tail = token.partition(":")
    if not (head.isascii() and head.isdigit() and colon and tail):
        raise ValueError("not a Telegram bot token (expected digits, ':' and the secret part)")
    return head


def make_bot(token: str, api_url: str, request: BaseRequest) -> Bot:
    """A `Bot` for this token and Bot API server, never initialised (no getMe: start-up needs no network).

    The caller owns `request` and shuts it down: `Bot.shutdown` does nothing for a bot never initialised.
    """
    api = api_url.rstrip("/")
    return Bot(
        token,
        base_url=f"{api}/bot",
        base_file_url=f"{api}/file/bot",
        request=request,
        get_updates_request=request,
    )


def chat_id(address: str) -> int:
    """The chat id of a "tg:<id>" address; ValueError for anything else."""
    if not address.startswith("tg:"):
        raise ValueError("not a Telegram address")
    return int(address.removeprefix("tg:"))


class TelegramSender:
    """Sends outbox rows through the Bot API. Never raises for Telegram's answer: it returns it."""

    channel: Channel = "telegram"

    def __init__(
        self,
        token: str,
        *,
        api_url: str = "https://api.telegram.org",
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        connections: int = 16,
    ) -> None:
        self._credential = bot_id(token)
        # Enough connections for the dispatcher's concurrent sends; waiting for a free one counts as a
        # timeout (PTB says "not sent"), which is a RetryLater like any other. aiohttp, not PTB's default
        # httpx: a fifth of the CPU a message (see telegram_http).
        self._request = AiohttpRequest(
            connections=connections, connect_timeout=connect_timeout, read_timeout=read_timeout
        )
        self._bot = make_bot(token, api_url, self._request)

    @classmethod
    def from_settings(cls, settings: Settings) -> TelegramSender:
        """The sender for the configured bot (ConfigError when Telegram is not configured)."""
        if settings.telegram_token is None:
            raise ConfigError("Telegram is off: HAMROH_TELEGRAM_TOKEN is not set")
        return cls(settings.telegram_token.get_secret_value(), api_url=settings.telegram_api_url)

    @property
    def credential(self) -> str:
        """The bot id (the digits before ':' in the token); the token itself is never shown."""
        return self._credential

    def cost(self, message: Outgoing) -> int:
        """Messages this takes: the pieces of a long text, else 1 (commands count as one call)."""
        if "op" in message.body:
            return 1
        return max(1, len(split_for_telegram(str(message.body.get("text", "")), TEXT_LIMIT)))

    async def send(self, message: Outgoing) -> SendResult:
        """Send a message, delete her chat's messages, or answer a pressed button."""
        try:
            chat = chat_id(message.address)
        except ValueError:
            return Failed("not a Telegram chat id")
        op = message.body.get("op")
        try:
            if op is None:
                return await self._send_text(chat, message.body)
            if op == "clear_chat":
                return await self._clear_chat(chat, message.body.get("message_ids", []))
            if op == "answer_callback":
                return await self._answer(str(message.body.get("id", "")))
        except TelegramError as exc:
            return _result(exc)
        return Failed("unknown command for Telegram")

    async def close(self) -> None:
        """Close the connections to the Bot API."""
        await self._request.shutdown()

    async def _send_text(self, chat: int, body: dict[str, Any]) -> SendResult:
        pieces = split_for_telegram(str(body.get("text", "")), TEXT_LIMIT)
        if not pieces:
            return Failed("nothing to send: the text is empty")
        markup = body.get("reply_markup")
        try:
            keyboard = InlineKeyboardMarkup.de_json(markup, self._bot) if markup else None
        except (TypeError, KeyError, ValueError, AttributeError):
            return Failed("the reply_markup is not an inline keyboard")
        # A retry after a failure half-way sends the first pieces again: at least once, as everywhere.
        ids: list[str] = []
        for number, piece in enumerate(pieces, start=1):
            last = number == len(pieces)
            sent = await self._bot.send_message(chat, piece, reply_markup=keyboard if last else None)
            ids.append(str(sent.message_id))
        return Sent(provider_ids=tuple(ids))

    async def _clear_chat(self, chat: int, message_ids: object) -> SendResult:
        if not isinstance(message_ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in message_ids
        ):
            return Failed("clear_chat needs a list of message ids")
        # Ids older than 48 hours are skipped by Telegram without an error: expected, not a failure.
        for start in range(0, len(message_ids), DELETE_LIMIT):
            await self._bot.delete_messages(chat, message_ids[start : start + DELETE_LIMIT])
        return Sent()

    async def _answer(self, query_id: str) -> SendResult:
        if not query_id:
            return Failed("answer_callback needs the query id")
        try:
            await self._bot.answer_callback_query(query_id)
        except BadRequest as exc:
            if any(words in exc.message.lower() for words in _STALE_QUERY):
                return Sent()  # too late to stop the spinner; her reply went anyway
            raise
        return Sent()


def _result(exc: TelegramError) -> SendResult:
    """Telegram's refusal as a result. Reasons are fixed words or Telegram's own short description."""
    match exc:
        case RetryAfter():
            return RetryLater("flood control (429)", after=retry_seconds(exc))
        case Forbidden():
            return Failed(f"forbidden (403): {_description(exc)}", unreachable=True)
        case BadRequest():
            return Failed(f"bad request (400): {_description(exc)}")
        case TimedOut():
            return RetryLater("timed out")
        case InvalidToken():
            # A 401/404: the token is wrong or revoked. Every message would fail alike; keep them queued.
            return RetryLater("the bot token was rejected (401/404)", after=TOKEN_REJECTED_WAIT)
        case NetworkError():
            # Connection failures and 5xx. PTB's message may quote the server's answer: keep it out.
            return RetryLater("network error or Telegram unavailable")
        case ChatMigrated() | Conflict() | EndPointNotFound():
            return Failed(f"refused: {type(exc).__name__}")
        case _ if type(exc) is TelegramError:  # e.g. "Invalid server response": a passing fault
            return RetryLater("unexpected answer from Telegram")
        case _:
            return Failed(f"refused: {type(exc).__name__}")


def retry_seconds(exc: RetryAfter) -> float:
    """Seconds Telegram asked us to wait (PTB gives a timedelta or, without PTB_TIMEDELTA, an int)."""
    value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _description(exc: TelegramError) -> str:
    """Telegram's description ("chat not found"), short; never a quoted server answer."""
    message = exc.message
    if "server response" in message:
        return "unreadable answer"
    for prefix in ("Bad Request: ", "Forbidden: ", "Conflict: "):
        message = message.removeprefix(prefix)
    return redact(message)[:120]


class SetupError(Exception):
    """Telegram refused a set-up call or could not be reached; the message says why, never the token."""


async def set_webhook(settings: Settings) -> None:
    """Ask Telegram to deliver updates to `<public_url>/webhooks/telegram`, signed with the secret."""
    if settings.telegram_token is None or settings.telegram_secret is None:
        raise ConfigError("Telegram is off: set HAMROH_TELEGRAM_TOKEN and HAMROH_TELEGRAM_SECRET")
    if settings.public_url is None:
        raise ConfigError("HAMROH_PUBLIC_URL is needed: the address Telegram calls")
    request = HTTPXRequest(connection_pool_size=1, connect_timeout=5.0, read_timeout=15.0)
    bot = make_bot(settings.telegram_token.get_secret_value(), settings.telegram_api_url, request)
    try:
        await bot.set_webhook(
            f"{settings.public_url.rstrip('/')}{WEBHOOK_PATH}",
            allowed_updates=ALLOWED_UPDATES,
            drop_pending_updates=False,  # what women wrote while the webhook moved must still arrive
            secret_token=settings.telegram_secret.get_secret_value(),
        )
    except TelegramError as exc:
        raise SetupError(f"Telegram did not set the webhook: {setup_reason(exc)}") from None
    finally:
        await request.shutdown()


def setup_reason(exc: TelegramError) -> str:
    """Why a set-up call failed, in words safe to print."""
    if isinstance(exc, InvalidToken):
        return "Telegram rejected the bot token (check HAMROH_TELEGRAM_TOKEN)"
    if isinstance(exc, BadRequest | Forbidden | Conflict):
        return _description(exc)
    return f"{type(exc).__name__}: is the Bot API at the configured address reachable?"
