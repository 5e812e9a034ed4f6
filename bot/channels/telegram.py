"""Telegram: replies as text with an inline keyboard whose buttons carry option keys, never labels."""

from __future__ import annotations

from typing import Any

from bot.model import MENU_KEY, Reply

CALLBACK_DATA_LIMIT = 64  # bytes, Telegram's limit for callback_data


def render(reply: Reply) -> dict[str, Any]:
    """The message as the Bot API takes it: text and an inline keyboard (one button a row)."""
    rows = [[{"text": o.label, "callback_data": o.key}] for o in reply.options]
    if reply.menu:
        rows.append([{"text": reply.menu, "callback_data": MENU_KEY}])
    message: dict[str, Any] = {"text": reply.text}
    if rows:
        message["reply_markup"] = {"inline_keyboard": rows}
    return message
