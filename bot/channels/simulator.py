"""The simulator: talk to Hamroh as an SMS or Telegram user without any account.

It goes through the same service path as the real channels (an Inbound, one turn, replies in the outbox)
and plays the part of the sender: it takes its replies out of the outbox and marks them sent.
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

from bot.channels.sms import cost
from bot.conversation.model import MENU_KEY, Channel
from bot.service import Hamroh, Inbound
from bot.store import OutboxMessage
from bot.store.db import transaction


async def take(hamroh: Hamroh, outbox_ids: Iterable[int], now: datetime) -> list[dict[str, Any]]:
    """The messages of these outbox rows, marked sent (ephemeral ones deleted), in the order written."""
    ids = list(outbox_ids)
    if not ids:
        return []
    async with transaction(hamroh.engine) as db:
        rows = (
            await db.exec(
                select(OutboxMessage).where(col(OutboxMessage.id).in_(ids)).order_by(col(OutboxMessage.id))
            )
        ).all()
        bodies = [json.loads(hamroh.vault.open(row.body)) for row in rows if row.kind != "command"]
        gone = [row.id for row in rows if row.ephemeral]
        await db.exec(
            sa.update(OutboxMessage).where(col(OutboxMessage.id).in_(ids)).values(status="sent", sent_at=now)
        )
        if gone:
            await db.exec(sa.delete(OutboxMessage).where(col(OutboxMessage.id).in_(gone)))
    return bodies


def buttons(message: dict[str, Any]) -> list[dict[str, str]]:
    """The inline buttons of a Telegram message, in order."""
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    return [button for row in rows for button in row]


def show(channel: Channel, message: dict[str, Any]) -> str:
    """A message as the channel would show it, for the terminal."""
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
        """She sends a message (or presses a button); the replies she receives."""
        if self.channel == "telegram" and button is None and text.strip().isdigit():
            # On Telegram she taps buttons; typing the number of a button stands for tapping it.
            number = int(text.strip())
            if number == 0:
                button = MENU_KEY
            elif 1 <= number <= len(self.last_buttons):
                button = self.last_buttons[number - 1]["callback_data"]
        inbound = Inbound(
            self.channel,
            self.address,
            text="" if button else text,
            button=button,
            simulated=True,
        )
        outcome = await self.hamroh.handle(inbound)
        messages = await take(self.hamroh, outcome.outbox_ids, self.hamroh.clock())
        if messages and self.channel == "telegram":
            self.last_buttons = buttons(messages[-1])
        return messages


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
