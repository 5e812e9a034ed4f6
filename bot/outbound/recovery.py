"""Rows a dispatcher left behind: sends in doubt after a crash, rows given back unsent, old chat ids."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot import outbox
from bot.announcements import outcomes
from bot.conversation.model import Channel
from bot.effects import CLEARABLE
from bot.store import ChatMessage, OutboxMessage
from bot.store.db import transaction


async def recover(
    engine: AsyncEngine, channel: Channel, *, now: datetime, expired_only: bool = False
) -> tuple[int, int]:
    """Rows left "sending" by a dispatcher that died: replies go again, bulk messages are held.

    With `expired_only`, only rows whose lease ran out (sends that hung). Returns (replies queued again,
    bulk messages held).
    """
    resent = held = 0
    async with transaction(engine) as db:
        stale = select(OutboxMessage).where(
            OutboxMessage.channel == channel, OutboxMessage.status == outbox.SENDING
        )
        if expired_only:
            stale = stale.where(col(OutboxMessage.lease_until) < now)
        rows = (await db.exec(stale.with_for_update(skip_locked=True))).all()
        doubted: list[int] = []
        for row in rows:
            row.in_doubt, row.claimed_by, row.lease_until = True, None, None
            if row.kind == "bulk":
                row.status = outbox.IN_DOUBT
                held += 1
                if row.announcement_text_id is not None and row.id is not None:
                    doubted.append(row.id)
            else:
                row.status, row.next_attempt_at = outbox.QUEUED, now
                resent += 1
            db.add(row)
        await outcomes.record(db, outbox_ids=doubted, outcome=outcomes.IN_DOUBT, now=now)
    return resent, held


async def give_back(engine: AsyncEngine, row_id: int, *, name: str, now: datetime) -> None:
    """A row claimed but not sent goes back to the queue: it was never in flight, so it is not in doubt."""
    async with transaction(engine) as db:
        current = await db.get(OutboxMessage, row_id, with_for_update=True)
        if current is None or current.claimed_by != name:
            return  # the new active sender recovered it already
        current.status, current.claimed_by, current.lease_until = outbox.QUEUED, None, None
        current.attempts, current.next_attempt_at = max(0, current.attempts - 1), now
        db.add(current)


async def forget_old_chat_messages(engine: AsyncEngine, *, now: datetime) -> int:
    """Telegram message ids older than 48 hours can no longer be deleted: drop them."""
    async with transaction(engine) as db:
        result = await db.exec(sa.delete(ChatMessage).where(col(ChatMessage.at) < now - CLEARABLE))
        return int(result.rowcount or 0)
