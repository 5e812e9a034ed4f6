"""Writing to the outbox: every message Hamroh sends starts as a row here, inside the turn's transaction."""

from __future__ import annotations

import json
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.conversation.model import Channel
from bot.store import AnnouncementText, Contact, OutboxMessage
from bot.store.crypto import Vault

REPLY_PRIORITY = 0  # conversation replies and commands leave first
BULK_PRIORITY = 10  # announcements wait behind them

QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
IN_DOUBT = "in_doubt"
SIMULATOR = "simulator"  # replies to the simulator: read back by it, never sent by the dispatcher


def row(
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
) -> OutboxMessage:
    """An outbox row with its body sealed, ready to leave now."""
    return OutboxMessage(
        contact_id=contact_id,
        channel=channel,
        address=sealed_address,
        kind=kind,
        body=vault.seal(json.dumps(body, ensure_ascii=False)),
        priority=BULK_PRIORITY if kind == "bulk" else REPLY_PRIORITY,
        status=SIMULATOR if simulated else QUEUED,
        ephemeral=ephemeral,
        created_at=now,
        next_attempt_at=now,
    )


async def add(db: AsyncSession, rows: list[OutboxMessage]) -> tuple[int, ...]:
    """Add rows and return their ids, in the order written (the order they will leave in)."""
    db.add_all(rows)
    await db.flush()
    return tuple(r.id for r in rows if r.id is not None)


@dataclass(frozen=True)
class BulkParts:
    """What a bulk row leaves with, read from her contact and the announcement's text when claimed."""

    address: bytes  # sealed
    body: bytes  # sealed
    reachable: bool  # False: she opted out or blocked the bot since it was queued (or erased her data)


async def bulk_parts(
    db: AsyncSession, rows: Sequence[OutboxMessage], texts: MutableMapping[int, bytes]
) -> dict[int, BulkParts]:
    """Her sealed address and the announcement's sealed text for each bulk row of an announcement.

    `texts` caches the sealed texts across calls: each is sealed once and never changes.
    """
    rows = [r for r in rows if r.announcement_text_id is not None and r.id is not None]
    if not rows:
        return {}
    contact_ids = {r.contact_id for r in rows if r.contact_id is not None}
    contacts = {
        c.id: c for c in (await db.exec(select(Contact).where(col(Contact.id).in_(contact_ids)))).all()
    }
    missing = {r.announcement_text_id for r in rows if r.announcement_text_id not in texts}
    if missing:
        query = select(AnnouncementText).where(col(AnnouncementText.id).in_(missing))
        texts.update((t.id, t.body) for t in (await db.exec(query)).all() if t.id is not None)
    parts: dict[int, BulkParts] = {}
    for row in rows:
        assert row.id is not None
        contact = contacts.get(row.contact_id)
        body = texts.get(row.announcement_text_id or 0)
        if contact is None or body is None:  # erased meanwhile: there is nobody to send it to
            parts[row.id] = BulkParts(b"", b"", reachable=False)
        else:
            parts[row.id] = BulkParts(
                contact.address, body, reachable=not contact.opted_out and contact.reachable
            )
    return parts
