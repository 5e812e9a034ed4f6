"""The statements every turn runs, as SQLAlchemy Core over the SQLModel tables, each built once.

A turn runs on every message she sends, so its statements are kept to the fewest round trips and the least
ORM work: her contact and her session in one SELECT (her contact locked), the delivery recorded with
INSERT ... ON CONFLICT DO NOTHING (the duplicate check and the record in one statement), and her session
written with one upsert, the outbox rows in one multi-row insert. PostgreSQL and SQLite both speak these.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.store.tables import Contact, ConversationState, Delivery, OutboxMessage

_DELIVERIES = Delivery.__table__  # type: ignore[attr-defined]
_SESSIONS = ConversationState.__table__  # type: ignore[attr-defined]
_OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]
_OUTBOX_COLUMNS = tuple(column.name for column in _OUTBOX.columns if column.name != "id")
# One INSERT of every row, their ids returned in the order given (the order they will leave in).
_OUTBOX_INSERT = sa.insert(_OUTBOX).returning(_OUTBOX.c.id, sort_by_parameter_order=True)

# FOR UPDATE OF her contact only: two messages of hers at once take turns, so neither overwrites the other's
# session (her session row may not exist yet, and the outer join's empty side cannot be locked).
_HER = (
    select(Contact, ConversationState.state)
    .outerjoin(ConversationState, col(ConversationState.contact_id) == col(Contact.id))
    .where(Contact.fingerprint == sa.bindparam("fingerprint"))
    .with_for_update(of=Contact)
)


def _delivery(module: Any) -> Any:
    return (
        module.insert(_DELIVERIES)
        .on_conflict_do_nothing(index_elements=["channel", "provider_id"])
        .returning(_DELIVERIES.c.id)
    )


def _session_upsert(module: Any) -> Any:
    statement = module.insert(_SESSIONS)
    return statement.on_conflict_do_update(
        index_elements=["contact_id"],
        set_={"state": statement.excluded.state, "updated_at": statement.excluded.updated_at},
    )


_STATEMENTS = {
    name: {"delivery": _delivery(module), "session": _session_upsert(module)}
    for name, module in (("postgresql", postgresql), ("sqlite", sqlite))
}


def _statement(db: AsyncSession, name: str) -> Any:
    """The statement for the session's database (ON CONFLICT is spelt by each dialect's insert)."""
    bind = db.bind
    assert bind is not None  # a turn's session is always bound to the service's engine
    return _STATEMENTS[bind.dialect.name][name]


async def her_contact_and_session(db: AsyncSession, fingerprint: str) -> tuple[Contact | None, str | None]:
    """Her contact, locked for the turn, and her stored session (JSON text), or None for either."""
    found = (await db.exec(_HER, params={"fingerprint": fingerprint})).first()
    if found is None:
        return None, None
    contact, state = found
    return contact, state


async def record_delivery(
    db: AsyncSession, *, channel: str, provider_id: str, contact_id: int | None, now: datetime
) -> bool:
    """Record a message as handled; False if it was already (a redelivery: the turn does nothing).

    A redelivery racing the first delivery waits for the other transaction and then finds it.
    """
    values = {"channel": channel, "provider_id": provider_id, "contact_id": contact_id, "received_at": now}
    inserted = await db.exec(_statement(db, "delivery"), params=values)
    return inserted.first() is not None


async def save_session(db: AsyncSession, *, contact_id: int, state: str, now: datetime) -> None:
    """Write her session (one row per contact), whether or not she had one."""
    values = {"contact_id": contact_id, "state": state, "updated_at": now}
    await db.exec(_statement(db, "session"), params=values)


async def add_outbox(db: AsyncSession, rows: list[OutboxMessage]) -> tuple[int, ...]:
    """Insert outbox rows (made by `bot.outbox.row`) in one statement; their ids, in the order given."""
    if not rows:
        return ()
    values = [{name: getattr(row, name) for name in _OUTBOX_COLUMNS} for row in rows]
    inserted = await db.exec(_OUTBOX_INSERT, params=values)
    return tuple(inserted.scalars())
