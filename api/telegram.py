"""`POST /webhooks/telegram`: Telegram's updates, signed with the webhook's secret token.

Answers: 403 without the right secret (nothing read); 415, 413 or 400 for a body that is not one update;
200 once the update is handled or ignored; 503 when the turn failed, so Telegram delivers it again (the
update id makes the retry safe). An update that is well formed but unusable (a chat id that is no id) is
answered 200: Telegram retries every non-2xx answer, and retrying it could never succeed.
"""

from __future__ import annotations

import hmac
import json
import logging
from email.message import Message
from typing import cast

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from telegram import Bot
from telegram.request import HTTPXRequest

from api.bodies import read_body
from api.deadline import TooSlow, within
from api.deps import hamroh_of, settings_of
from bot.channels.telegram import WEBHOOK_PATH, make_bot
from bot.channels.telegram_updates import NotAnUpdate, handle_update
from bot.config import Settings

log = logging.getLogger(__name__)
WEBHOOK_HEADER = "X-Telegram-Bot-Api-Secret-Token"
NO_STORE = {"Cache-Control": "no-store"}

router = APIRouter()


def verify_secret(request: Request, settings: Settings) -> None:
    """403 unless the request carries the webhook's secret token (compared in constant time)."""
    expected = settings.telegram_secret.get_secret_value() if settings.telegram_secret else None
    given = request.headers.get(WEBHOOK_HEADER)
    # Header values arrive as latin-1 text; as bytes the comparison never fails on a strange character.
    if not expected or given is None or not hmac.compare_digest(given.encode("latin-1"), expected.encode()):
        raise HTTPException(403, "forbidden")


def parsing_bot(request: Request, settings: Settings) -> Bot:
    """The app's one Bot, made on first use: it only gives parsed objects their bot, it never calls out."""
    bot = getattr(request.app.state, "telegram_bot", None)
    if bot is None:
        assert settings.telegram_token is not None  # the router is included only when Telegram is on
        unused = HTTPXRequest(connection_pool_size=1)  # never opens a connection
        bot = make_bot(settings.telegram_token.get_secret_value(), settings.telegram_api_url, unused)
        request.app.state.telegram_bot = bot
    return cast(Bot, bot)


async def read_json(request: Request, settings: Settings) -> object:
    """The body as a JSON value, or a 4xx that says what is wrong with it (never quoting it)."""
    if not is_json(request.headers.get("content-type", "")):
        raise HTTPException(415, "an update is sent as JSON")
    body = await read_body(request, settings.max_request_bytes, "the body is too large")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested beyond reason
        raise HTTPException(400, "the body is not valid JSON") from None


@router.post(WEBHOOK_PATH)
async def telegram_webhook(request: Request) -> JSONResponse:
    """Handle one update: 200 when done or ignored, 400 when it is none, 503 when it must come again.

    The checks are called in order rather than declared as dependencies: the webhook takes most requests,
    and resolving dependencies cost it more than the checks themselves.
    """
    settings = settings_of(request)
    verify_secret(request, settings)
    data = await read_json(request, settings)
    bot = parsing_bot(request, settings)
    try:
        await within(settings.turn_timeout_seconds, handle_update(hamroh_of(request), bot, data))
    except NotAnUpdate as exc:  # found before anything is written
        raise HTTPException(400, str(exc)) from None
    except TooSlow:  # rolled back (the database hangs?): Telegram delivers it again
        limit = settings.turn_timeout_seconds
        log.warning("telegram update took over %g s; Telegram will deliver it again", limit)
        detail = {"detail": f"the update was not handled within {limit:g} s"}
        return JSONResponse(detail, status_code=503, headers=NO_STORE)
    except Exception as exc:  # the class only: a message may quote her words or the database URL
        update_id = data.get("update_id") if isinstance(data, dict) else None
        name = type(exc).__name__
        log.warning("telegram update %s failed (%s); Telegram will deliver it again", update_id, name)
        detail = {"detail": "the update could not be handled now"}
        return JSONResponse(detail, status_code=503, headers=NO_STORE)
    # Nothing but "ok": a "method" field in this answer would be run by Telegram as a Bot API call.
    return JSONResponse({"ok": True}, headers=NO_STORE)


def is_json(content_type: str) -> bool:
    """Whether a Content-Type header names JSON (parameters such as charset allowed)."""
    if content_type == "application/json":  # as Telegram sends it: no need to parse the header
        return True
    header = Message()
    header["content-type"] = content_type
    subtype = header.get_content_subtype()
    return header.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))
