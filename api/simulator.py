"""The web simulator (development only): chat as an SMS or Telegram user through the real service path.

It creates real records, like any woman's message would: the app includes it only when the settings say so.
"""

from __future__ import annotations

import json
from email.message import Message
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.bodies import read_body
from api.deps import HamrohDep
from bot.channels.simulator import new_message_id, receive
from bot.channels.sms import cost
from bot.service import Inbound
from bot.store.crypto import AddressError

HERE = Path(__file__).parent
MAX_BODY_BYTES = 256 * 1024  # 10,000 characters, each escaped as JSON at its longest, fit with room to spare
MAX_TEXT = 10_000
# The page loads nothing but its own files: what she types can never run as a script.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

router = APIRouter()
router.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
templates = Jinja2Templates(directory=HERE / "templates")


class SimulatedMessage(BaseModel):
    """What the simulated phone sends: her text, or the callback data of the button she pressed."""

    model_config = ConfigDict(extra="forbid")

    channel: Literal["sms", "telegram"]
    address: Annotated[str, Field(min_length=1, max_length=40)]
    text: Annotated[str, Field(max_length=MAX_TEXT)] = ""
    button: Annotated[str | None, Field(min_length=1, max_length=64)] = None


async def read_message(request: Request) -> SimulatedMessage:
    """The request body as a SimulatedMessage, or a 4xx that says what is wrong with it."""
    if not _is_json(request.headers.get("content-type", "")):
        raise HTTPException(415, "send the message as JSON (Content-Type: application/json)")
    too_long = f"the message is too long: at most {MAX_TEXT} characters of text"
    body = await read_body(request, MAX_BODY_BYTES, too_long)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested beyond reason
        raise HTTPException(400, "the body is not valid JSON") from None
    try:
        return SimulatedMessage.model_validate(data)
    except ValidationError as exc:
        raise HTTPException(422, _reasons(exc)) from None


MessageDep = Annotated[SimulatedMessage, Depends(read_message)]


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page(request: Request) -> HTMLResponse:
    """The phone-like page."""
    return templates.TemplateResponse(request, "simulator.html", {"max_text": MAX_TEXT}, headers=PAGE_HEADERS)


@router.post("/simulator/messages")
async def send_message(message: MessageDep, hamroh: HamrohDep) -> JSONResponse:
    """Run her message through the service; answer with what the outbox holds for her phone.

    `message_id` is the id her Telegram message got (a pressed button is no message), `replies` the bot's
    messages (with their ids on Telegram), `commands` what the bot does to her chat: a `clear_chat` names the
    messages to delete from it.
    """
    message_id = None
    if message.channel == "telegram" and message.button is None:
        message_id = await new_message_id(hamroh, hamroh.clock())
    inbound = Inbound(
        message.channel,
        message.address,
        text=message.text,
        button=message.button,
        message_id=message_id,
        simulated=True,
    )
    try:
        outcome = await hamroh.handle(inbound)
    except AddressError as exc:
        raise HTTPException(422, f"address: {exc}") from None
    received = await receive(hamroh, outcome, hamroh.clock())
    replies = received.messages
    if message.channel == "sms":
        for reply in replies:
            count = cost(str(reply.get("text", "")))
            reply["sms"] = {"segments": count.segments, "encoding": count.encoding, "chars": count.chars}
    body = {"message_id": message_id, "replies": replies, "commands": received.commands}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def _is_json(content_type: str) -> bool:
    header = Message()
    header["content-type"] = content_type
    subtype = header.get_content_subtype()
    return header.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def _reasons(exc: ValidationError) -> str:
    """Field and problem of each error, without echoing what was sent (it may be her words)."""
    reasons = []
    for error in exc.errors(include_input=False, include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "body"
        reasons.append(f"{field}: {error['msg']}")
    return "; ".join(reasons)
