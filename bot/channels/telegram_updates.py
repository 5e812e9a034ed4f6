"""Telegram updates in: what each one means for Hamroh, and one path for the webhook and for polling.

`read` decides (no I/O): her text, a pressed button or something that is not text becomes a turn; her
blocking or unblocking the bot becomes a change of reachability; anything else (edits, channel posts,
groups, kinds we did not ask for) is ignored and arrives without harm. `handle_update` carries it out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeGuard, TypeVar
from urllib.parse import urlencode

import sqlalchemy as sa
from telegram import Bot, Chat, Message, Update
from telegram.constants import ChatMemberStatus
from telegram.error import InvalidToken, RetryAfter, TelegramError
from telegram.request import HTTPXRequest

from bot import receipts
from bot.channels.telegram import (
    ALLOWED_UPDATES,
    SetupError,
    make_bot,
    retry_seconds,
    setup_reason,
)
from bot.config import ConfigError, Settings
from bot.service import Hamroh, Inbound, Outcome
from bot.store.crypto import AddressError, normalise_address

log = logging.getLogger(__name__)
T = TypeVar("T")
LONG_POLL_MARGIN = 10.0  # seconds a long poll may take beyond the time Telegram holds it
# Telegram's ids and dates all fit in 53 bits ("at most 52 significant bits"): a number beyond is no
# Telegram's, and would overflow a database column on every delivery of it.
LARGEST = 2**53
# What a turn raises because of what the update holds, not because of the moment: it fails every time.
NEVER_SUCCEEDS = (UnicodeError, OverflowError, AddressError, sa.exc.DataError)

ACTED_ON = ("message", "callback_query", "my_chat_member")  # edits, channel posts and the rest: ignored
# What she may send that is not text: the engine answers it kindly, in her language.
MEDIA = (
    "photo",
    "voice",
    "sticker",
    "document",
    "location",
    "contact",
    "video",
    "audio",
    "video_note",
    "animation",
    "venue",
    "dice",
    "poll",
    "story",
    "paid_media",
)


class NotAnUpdate(ValueError):
    """A JSON value that is not a Telegram update (the message never quotes it: it may hold her words)."""


@dataclass(frozen=True)
class Turn:
    """Run the service for her message (a pressed button is answered within the same turn)."""

    inbound: Inbound


@dataclass(frozen=True)
class Reachability:
    """She blocked the bot (`can_reach` False) or started it again (True)."""

    address: str
    can_reach: bool


@dataclass(frozen=True)
class Ignored:
    """An update Hamroh has nothing to do with; `kind` names it for the debug log."""

    kind: str


Action = Turn | Reachability | Ignored


@dataclass(frozen=True)
class Handled:
    """What became of an update."""

    what: Literal["turn", "duplicate", "reachability", "ignored"]
    outcome: Outcome | None = None


def _checked(data: object) -> tuple[int, dict[str, object]]:
    """Its update id, and the kinds of update Hamroh acts on that it holds; NotAnUpdate if it is none."""
    if not isinstance(data, dict):
        raise NotAnUpdate("an update is a JSON object")
    update_id = data.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        raise NotAnUpdate("an update has an integer update_id")
    if not 0 <= update_id < LARGEST:
        raise NotAnUpdate("an update's update_id is a positive number of at most 53 bits")
    wanted = {key: data[key] for key in ACTED_ON if data.get(key) is not None}
    if not _plausible(wanted):
        raise NotAnUpdate("the update holds a number or a text Telegram never sends")
    return update_id, wanted


def parse_update(data: object, bot: Bot | None) -> Update:
    """A JSON value as a python-telegram-bot `Update` holding only what Hamroh acts on; NotAnUpdate if none.

    Kinds we ignore are not parsed at all: a field that this SDK version cannot read (a newer Bot API)
    must not turn an update we would ignore anyway into an error that Telegram retries.
    """
    return _parsed(*_checked(data), bot)


def _parsed(update_id: int, wanted: dict[str, object], bot: Bot | None) -> Update:
    try:
        return Update.de_json({"update_id": update_id, **wanted}, bot)
    except Exception:  # PTB checks nothing itself: a wrong shape fails in many ways, all of them bad input
        raise NotAnUpdate("the update's fields do not have Telegram's shape") from None


def _plausible(value: object) -> bool:
    """Whether every number fits Telegram's 53 bits and every text is real Unicode (no lone surrogate
    escape), all the way down."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif not _fits(item):
            return False
    return True


def _fits(item: object) -> bool:
    if isinstance(item, int):
        return -LARGEST < item < LARGEST
    if isinstance(item, str):
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:
            return False
    return True


# The plainest update, her text in a private chat as Telegram sends it, is read straight from the JSON:
# python-telegram-bot's parse sets every one of a Message's hundred-odd attributes, which cost a webhook
# turn a tenth of its CPU. Any other shape, or any doubt, goes to the parse (`read_update`).
_PLAIN_MESSAGE = {"message_id": int, "date": int, "chat": dict, "from": dict, "text": str}
_PLAIN_CHAT = {"id": int, "type": str, "first_name": str, "last_name": str, "username": str}
_PLAIN_USER = {
    "id": int,
    "is_bot": bool,
    "first_name": str,
    "last_name": str,
    "username": str,
    "language_code": str,
    "is_premium": bool,
}


def _plain_text(update_id: int, wanted: dict[str, object]) -> Action | None:
    """Her text in a private chat, as `read` reads the parse of it; None for any other shape (the parse
    then takes it, and refuses it where it would). Only what the parse takes exactly so passes here."""
    message = wanted.get("message")
    if len(wanted) != 1 or not _shaped(message, _PLAIN_MESSAGE, ("message_id", "date", "chat", "text")):
        return None
    chat, user = message["chat"], message.get("from")
    if not _shaped(chat, _PLAIN_CHAT, ("id", "type")) or chat["type"] != Chat.PRIVATE or not message["text"]:
        return None
    if user is not None and not _shaped(user, _PLAIN_USER, ("id", "is_bot", "first_name")):
        return None
    try:
        datetime.fromtimestamp(message["date"], tz=UTC)  # as the parse reads it (past year 9999 it fails)
        address = normalise_address("telegram", str(chat["id"]))
    except (ValueError, OverflowError, OSError):
        return None  # the parse refuses it, or `read` finds the chat id no id
    inbound = Inbound(
        "telegram",
        address,
        text=message["text"],
        provider_id=f"u{update_id}",
        message_id=message["message_id"],
    )
    return Turn(inbound)


def _shaped(value: object, types: dict[str, type], required: tuple[str, ...]) -> TypeGuard[dict[str, Any]]:
    """A dict of only these keys, each of exactly its type, with the required ones present."""
    return (
        isinstance(value, dict)
        and all(key in value for key in required)
        and all(type(item) is types.get(key) for key, item in value.items())
    )


def read(update: Update) -> Action:
    """What an update asks of Hamroh (no I/O)."""
    provider_id = f"u{update.update_id}"
    if update.message is not None:
        return _message(update.message, provider_id)
    if update.callback_query is not None:
        query = update.callback_query
        message = query.message
        if message is None or not isinstance(query.data, str) or not query.data:
            return Ignored("callback_query without our data")  # an inline message or a game
        address = _private_address(message.chat)
        if address is None:
            return Ignored("callback_query outside a private chat")
        inbound = Inbound(
            "telegram", address, button=query.data, provider_id=provider_id, callback_query_id=str(query.id)
        )
        return Turn(inbound)
    if update.my_chat_member is not None:
        address = _private_address(update.my_chat_member.chat)
        status = update.my_chat_member.new_chat_member.status
        if address is None or status not in (ChatMemberStatus.BANNED, ChatMemberStatus.MEMBER):
            return Ignored("my_chat_member")
        return Reachability(address, can_reach=status == ChatMemberStatus.MEMBER)
    return Ignored("a kind of update Hamroh does not act on")


def _message(message: Message, provider_id: str) -> Action:
    address = _private_address(message.chat)
    if address is None:
        return Ignored("message outside a private chat")
    message_id = message.message_id if isinstance(message.message_id, int) else None
    text = message.text if isinstance(message.text, str) else ""
    kind = next((k for k in MEDIA if getattr(message, k, None)), None)
    if kind is not None and isinstance(message.caption, str):
        text = message.caption  # her words beside a photo are still her words
    if not text and kind is None:
        return Ignored("service message")  # a pinned message, a shared chat...: nothing she said
    inbound = Inbound(
        "telegram",
        address,
        text=text,
        media=kind is not None,
        media_ref=_file_reference(message, kind) if kind else None,
        provider_id=provider_id,
        message_id=message_id,
    )
    return Turn(inbound)


def _file_reference(message: Message, kind: str) -> dict[str, str] | None:
    """What a counsellor needs to fetch her photo or voice note from the Bot API later (nothing stored
    but this id, and only in her case's sealed transcript)."""
    attachment = getattr(message, kind)
    if isinstance(attachment, tuple):  # photos come in several sizes: the largest is last
        attachment = attachment[-1] if attachment else None
    file_id = getattr(attachment, "file_id", None)
    return {"kind": kind, "file_id": file_id} if isinstance(file_id, str) else None


def _private_address(chat: Chat) -> str | None:
    """Her address ("tg:<id>") in a private chat; None for groups, channels and ids that are not ids."""
    if chat.type != Chat.PRIVATE:
        return None
    try:
        return normalise_address("telegram", str(chat.id))
    except AddressError:
        return None


def read_update(data: object, bot: Bot | None) -> tuple[int, Action]:
    """Its update id, and what it asks of Hamroh (no I/O); NotAnUpdate if it is none."""
    update_id, wanted = _checked(data)
    plain = _plain_text(update_id, wanted)
    if plain is not None:
        return update_id, plain
    update = _parsed(update_id, wanted, bot)  # checked once, above
    try:
        return update_id, read(update)
    except Exception:  # `read` does no I/O: whatever fails in it fails on every delivery
        raise NotAnUpdate("the update's fields do not have Telegram's shape") from None


async def handle_update(hamroh: Hamroh, bot: Bot | None, data: object) -> Handled:
    """Carry out one update, as JSON from the webhook or from getUpdates.

    NotAnUpdate for bad input, which no retry could mend (the turn, if one began, rolled back). Any other
    exception means the turn failed: the caller must not confirm the update, so that Telegram delivers it
    again (its update id makes that safe).
    """
    update_id, action = read_update(data, bot)
    match action:
        case Turn(inbound=inbound):
            try:
                outcome = await hamroh.handle(inbound)
            except NEVER_SUCCEEDS as exc:
                log.warning("telegram update %s cannot be handled (%s)", update_id, type(exc).__name__)
                raise NotAnUpdate("the update holds what Hamroh cannot take") from None
            return Handled("duplicate" if outcome.duplicate else "turn", outcome)
        case Reachability(address=address, can_reach=can_reach):
            await receipts.reachable(hamroh, channel="telegram", address=address, can_reach=can_reach)
            return Handled("reachability")
        case Ignored(kind=kind):
            log.debug("telegram update ignored: %s", kind)
            return Handled("ignored")


async def poll(
    settings: Settings,
    hamroh: Hamroh,
    *,
    stop: asyncio.Event,
    long_poll_seconds: int = 25,
    retry_delay: float = 1.0,
    max_delay: float = 30.0,
) -> None:
    """Development without a public address: drop the webhook, then long-poll until `stop` is set.

    Every update goes through `handle_update`, as on the webhook. A failed turn is not confirmed: the
    offset stays at it, so the next poll brings it again (the duplicate check makes that safe).
    SetupError when Telegram rejects the token or the webhook cannot be removed.
    """
    if settings.telegram_token is None:
        raise ConfigError("Telegram is off: HAMROH_TELEGRAM_TOKEN is not set")
    # Two connections: a long poll in flight never makes the next call wait for the pool.
    request = HTTPXRequest(connection_pool_size=2, connect_timeout=5.0, read_timeout=10.0)
    bot = make_bot(settings.telegram_token.get_secret_value(), settings.telegram_api_url, request)
    try:
        try:
            await bot.delete_webhook(drop_pending_updates=False)  # getUpdates is refused while one is set
        except TelegramError as exc:
            raise SetupError(f"could not remove the webhook: {setup_reason(exc)}") from None
        await _poll_until(stop, request, bot, hamroh, long_poll_seconds, retry_delay, max_delay)
    finally:
        await request.shutdown()


async def _poll_until(
    stop: asyncio.Event,
    request: HTTPXRequest,
    bot: Bot,
    hamroh: Hamroh,
    wait: int,
    retry_delay: float,
    max_delay: float,
) -> None:
    offset: int | None = None
    delay = retry_delay
    while not stop.is_set():
        try:
            updates = await _unless_stopped(stop, _get_updates(request, bot, offset, wait))
        except InvalidToken:
            raise SetupError(setup_reason(InvalidToken())) from None
        except RetryAfter as exc:
            await _sleep(stop, retry_seconds(exc))
            continue
        except TelegramError as exc:
            log.warning("telegram: getUpdates failed (%s); again in %.0f s", setup_reason(exc), delay)
            await _sleep(stop, delay)
            delay = min(delay * 2, max_delay)
            continue
        if updates is None:
            return  # stopped while waiting
        offset, failed = await _handle_all(hamroh, bot, updates, offset)
        if failed:
            await _sleep(stop, delay)
            delay = min(delay * 2, max_delay)
        else:
            delay = retry_delay


async def _get_updates(request: HTTPXRequest, bot: Bot, offset: int | None, wait: int) -> list[object]:
    """getUpdates as plain JSON, through PTB's request (its errors: RetryAfter, InvalidToken...).

    Not `Bot.get_updates`: it parses every update at once, and one it could not read would stop polling
    for good; plain JSON goes through `handle_update` one by one, exactly as the webhook's does.
    """
    query: dict[str, str | int] = {"timeout": wait, "allowed_updates": json.dumps(ALLOWED_UPDATES)}
    if offset is not None:
        query["offset"] = offset
    url = f"{bot.base_url}/getUpdates?{urlencode(query)}"
    result = await request.post(url, read_timeout=wait + LONG_POLL_MARGIN)
    return list(result) if isinstance(result, list) else []


async def _handle_all(
    hamroh: Hamroh, bot: Bot, updates: list[object], offset: int | None
) -> tuple[int | None, bool]:
    """Handle updates in order; stop at the first failed turn, so the offset never passes it."""
    for data in updates:
        update_id = data.get("update_id") if isinstance(data, dict) else None
        try:
            await handle_update(hamroh, bot, data)
        except NotAnUpdate:
            log.warning("telegram: an update could not be read; skipped (it never could be)")
        except Exception as exc:  # the class only: a message may quote her words or a database URL
            name = type(exc).__name__
            log.warning("telegram: update %s failed (%s); it will come again", update_id, name)
            return offset, True
        if isinstance(update_id, int) and not isinstance(update_id, bool):
            offset = update_id + 1
    return offset, False


async def _unless_stopped(stop: asyncio.Event, call: Awaitable[T]) -> T | None:
    """The call's result, or None as soon as `stop` is set (the call is then cancelled)."""
    task = asyncio.ensure_future(call)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
