"""The simulator: talk to Hamroh as an SMS or Telegram user without any account.

It goes through the same service path as the real channels (an Inbound, one turn, replies in the outbox)
and plays the part of the sender: it takes its replies out of the outbox and marks them sent. Any address
may be typed: the service files it in the simulator's own space (bot.channels.simulated), apart from real
women, and nothing written to it ever leaves through a real channel. On Telegram
it also gives message ids, as Telegram would, so that "Clear this chat" can name the messages to delete.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import outbox
from bot.channels.sms import cost
from bot.conversation.model import MENU_KEY, Channel
from bot.service import Hamroh, Inbound, Outcome
from bot.store import ChatMessage, OutboxMessage
from bot.store.db import transaction


@dataclass(frozen=True)
class Received:
    """What her simulated phone gets from one turn: the messages, and the commands to her chat."""

    messages: list[dict[str, Any]]
    commands: list[dict[str, Any]]


async def take(hamroh: Hamroh, outbox_ids: Iterable[int], now: datetime) -> list[dict[str, Any]]:
    """The messages of these outbox rows, marked sent (ephemeral ones deleted), in the order written."""
    return (await _deliver(hamroh, list(outbox_ids), None, now)).messages


async def receive(hamroh: Hamroh, outcome: Outcome, now: datetime) -> Received:
    """Play the channel's sender for one turn: its messages and commands, taken out of the outbox.

    Telegram messages get a message id, remembered for 48 hours as the dispatcher does for a real chat, so
    that "Clear this chat" names them in its command as it would name real ones.
    """
    return await _deliver(hamroh, list(outcome.outbox_ids), outcome.contact_id, now)


async def new_message_id(hamroh: Hamroh, now: datetime) -> int:
    """The id Telegram would give her next message in a simulated chat (the service remembers it)."""
    async with transaction(hamroh.engine) as db:
        return await _next_message_id(db, now)


async def _deliver(hamroh: Hamroh, ids: list[int], contact_id: int | None, now: datetime) -> Received:
    if not ids and contact_id is None:
        return Received([], [])
    wanted: sa.ColumnElement[bool] = col(OutboxMessage.id).in_(ids)
    if contact_id is not None:
        # What else waits for her simulated phone: the commands a turn writes to her chat (clear it) beside
        # its replies, and what counsellors wrote to her since (held ones wait for her safe hours).
        wanted = sa.or_(
            wanted,
            sa.and_(
                col(OutboxMessage.contact_id) == contact_id,
                col(OutboxMessage.status) == outbox.SIMULATOR,
                sa.not_(col(OutboxMessage.held)),
            ),
        )
    messages: list[dict[str, Any]] = []
    commands: list[dict[str, Any]] = []
    async with transaction(hamroh.engine) as db:
        rows = (await db.exec(select(OutboxMessage).where(wanted).order_by(col(OutboxMessage.id)))).all()
        if not rows:
            return Received(messages, commands)
        next_id = await _next_message_id(db, now)
        for row in rows:
            body = json.loads(hamroh.vault.open(row.body))
            if row.kind == "command":
                commands.append(body)
            else:
                if row.channel == "telegram" and row.contact_id is not None:
                    body["message_id"], row.provider_id = next_id, str(next_id)
                    db.add(ChatMessage(contact_id=row.contact_id, message_id=next_id, at=now))
                    next_id += 1
                messages.append(body)
            if row.ephemeral:
                await db.delete(row)
            else:
                row.status, row.sent_at = outbox.SENT, now
                db.add(row)
    return Received(messages, commands)


async def _next_message_id(db: AsyncSession, now: datetime) -> int:
    """One more than the last id given, and never less than the clock in milliseconds: ids are forgotten
    after 48 hours, and an id given again could clear an old message still shown on the page."""
    last = (await db.exec(select(sa.func.max(ChatMessage.message_id)))).one()
    return max(int(last or 0) + 1, int(now.timestamp() * 1000))


def buttons(message: dict[str, Any]) -> list[dict[str, str]]:
    """The inline buttons of a Telegram message, in order."""
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    return [button for row in rows for button in row]


def show(channel: Channel, message: dict[str, Any]) -> str:
    """A message (or a command to her chat) as the channel would show it, for the terminal."""
    if "op" in message:
        return f"[{message['op']}: {len(message.get('message_ids', []))} messages]"
    text = str(message.get("text", ""))
    if channel == "sms":
        sms = cost(text)
        return f"{text}\n  [{sms.segments} SMS, {sms.encoding}, {sms.chars} characters]"
    labels = [f"[{n}: {b['text']}]" for n, b in enumerate(buttons(message), start=1)]
    return text + ("\n  " + " ".join(labels) if labels else "")


@dataclass
class Conversation:
    """One simulated woman: her channel and address, and the buttons she can press now."""

    hamroh: Hamroh
    channel: Channel
    address: str
    last_buttons: list[dict[str, str]] = field(default_factory=list)

    async def send(self, text: str = "", *, button: str | None = None) -> list[dict[str, Any]]:
        """She sends a message (or presses a button); the commands to her chat, then the replies."""
        if self.channel == "telegram" and button is None and text.strip().isdigit():
            # On Telegram she taps buttons; typing the number of a button stands for tapping it.
            number = int(text.strip())
            if number == 0:
                button = MENU_KEY
            elif 1 <= number <= len(self.last_buttons):
                button = self.last_buttons[number - 1]["callback_data"]
        message_id = None
        if self.channel == "telegram" and button is None:  # a pressed button is no message of hers
            message_id = await new_message_id(self.hamroh, self.hamroh.clock())
        inbound = Inbound(
            self.channel,
            self.address,
            text="" if button else text,
            button=button,
            message_id=message_id,
            simulated=True,
        )
        outcome = await self.hamroh.handle(inbound)
        received = await receive(self.hamroh, outcome, self.hamroh.clock())
        if received.messages and self.channel == "telegram":
            self.last_buttons = buttons(received.messages[-1])
        return received.commands + received.messages  # a turn writes its commands before its replies


async def chat(conversation: Conversation, lang: str | None, source: TextIO, out: TextIO) -> None:
    """Read her messages from `source` (one a line) and print the replies, as the channel shows them."""
    interactive = source.isatty()
    if lang is not None:
        for message in await conversation.send(button=f"lang:{lang}"):
            print(show(conversation.channel, message), file=out)
    while True:
        if interactive:
            print("> ", end="", file=out, flush=True)
        line = source.readline()
        if not line:
            break
        if not interactive:
            print(f"> {line.rstrip()}", file=out)
        for message in await conversation.send(line.rstrip("\n")):
            print(show(conversation.channel, message), file=out)
        out.flush()


def stdin() -> TextIO:
    """Standard input (a function so tests can give their own)."""
    return sys.stdin
