"""The console's live feed: events written in the same transaction as the change they describe.

Processes never share memory: a change becomes a `ConsoleEvent` row, and on PostgreSQL a NOTIFY that is
delivered at commit (so a listener never sees an event whose change rolled back). Browsers resume after
the last event id they saw. Events say which case and how urgent, never her words or her address.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.store import Case, ConsoleEvent

CHANNEL = "hamroh_console"  # the PostgreSQL NOTIFY channel
KINDS = (
    "case_opened",
    "case_raised",
    "case_message",
    "case_claimed",
    "case_transferred",
    "case_returned",
    "case_closed",
    "case_alert",
)


async def publish(db: AsyncSession, kind: str, case: Case, now: datetime) -> ConsoleEvent:
    """Record that something happened to a case; listeners hear of it once the transaction commits."""
    assert kind in KINDS, kind
    event = ConsoleEvent(at=now, kind=kind, case_id=case.id, priority=case.priority, queue=case.queue)
    db.add(event)
    await db.flush()
    connection = await db.connection()
    if connection.dialect.name == "postgresql":
        await connection.execute(sa.select(sa.func.pg_notify(CHANNEL, str(event.id))))
    return event


async def events_after(db: AsyncSession, last_id: int, *, limit: int = 200) -> list[ConsoleEvent]:
    """Events newer than `last_id`, oldest first."""
    query = (
        select(ConsoleEvent).where(col(ConsoleEvent.id) > last_id).order_by(col(ConsoleEvent.id)).limit(limit)
    )
    return list((await db.exec(query)).all())


async def last_event_id(db: AsyncSession) -> int:
    """The newest event's id (0 when there is none): where a new browser starts listening."""
    newest = (await db.exec(select(sa.func.max(ConsoleEvent.id)))).one()
    return int(newest or 0)
