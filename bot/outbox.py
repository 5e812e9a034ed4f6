"""Writing to the outbox: every message Hamroh sends starts as a row here, inside the turn's transaction."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.conversation.model import Channel
from bot.store import OutboxMessage
from bot.store.crypto import Vault

REPLY_PRIORITY = 0  # conversation replies and commands leave first
BULK_PRIORITY = 10  # announcements wait behind them

QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
IN_DOUBT = "in_doubt"
SIMULATOR = "simulator"  # replies to the simulator: read back by it, never sent by the dispatcher


def values(
    vault: Vault,
    *,
    contact_id: int | None,
    channel: Channel,
    sealed_address: bytes,
    body: dict[str, Any],
    now: datetime,
    kind: str = "reply",
    ephemeral: bool = False,
    simulated: bool = False,
) -> dict[str, Any]:
    """An outbox row's values with its body sealed, ready to leave now (for an INSERT of many rows)."""
    return {
        "contact_id": contact_id,
        "channel": channel,
        "address": sealed_address,
        "kind": kind,
        "body": vault.seal(json.dumps(body, ensure_ascii=False)),
        "priority": BULK_PRIORITY if kind == "bulk" else REPLY_PRIORITY,
        "status": SIMULATOR if simulated else QUEUED,
        "ephemeral": ephemeral,
        "created_at": now,
        "next_attempt_at": now,
    }


def row(vault: Vault, **fields: Any) -> OutboxMessage:
    """An outbox row with its body sealed, ready to leave now (the fields of `values`)."""
    return OutboxMessage(**values(vault, **fields))


async def add(db: AsyncSession, rows: list[OutboxMessage]) -> tuple[int, ...]:
    """Add rows and return their ids, in the order written (the order they will leave in)."""
    db.add_all(rows)
    await db.flush()
    return tuple(r.id for r in rows if r.id is not None)
