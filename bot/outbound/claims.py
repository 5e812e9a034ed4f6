"""Claiming outbox rows to send: each person's oldest waiting row, replies first, under a lease.

A claim is one transaction of two statements: the ids that may leave now (FOR UPDATE SKIP LOCKED on
PostgreSQL, so dispatchers never wait for each other's rows), then one UPDATE that marks them "sending"
and returns what sending needs. A bulk row of an announcement carries no address or body: her contact's
sealed address and the announcement's sealed text are read in the same transaction.

A claim that finds fewer rows than it may take also says when the next row not yet due will be (held for
her safe hours, retried after a backoff): the dispatcher sleeps until then, or until it is woken.
"""

from __future__ import annotations

from collections.abc import Collection, MutableMapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot import outbox
from bot.conversation.model import Channel
from bot.store import AnnouncementText, Contact, OutboxMessage
from bot.store.db import is_sqlite, transaction


@dataclass(frozen=True, slots=True)
class Claimed:
    """An outbox row claimed by this dispatcher ("sending", under its lease), as sending it needs it."""

    id: int
    channel: Channel
    contact_id: int | None
    kind: str  # reply | bulk | command
    priority: int
    attempts: int  # this send included
    ephemeral: bool
    announcement_text_id: int | None
    address: bytes  # sealed; a bulk row of an announcement: her contact's
    body: bytes  # sealed; a bulk row of an announcement: the announcement's text
    reachable: bool = True  # False: a bulk row whose woman opted out, blocked the bot or erased her data


def _outbox() -> sa.Table:
    return OutboxMessage.__table__  # type: ignore[attr-defined,no-any-return]


def _waiting(channels: Collection[Channel], limit: int, now: datetime, *, lock: bool) -> sa.Select[Any]:
    """Ids that may leave now, in the order they leave: a row waits while an earlier one of hers does."""
    table = _outbox()
    earlier = table.alias("earlier")
    # Her messages leave in the order written, within a priority: a reply never waits behind an
    # announcement queued (or held for her safe hours) before it.
    waiting_before = sa.exists().where(
        earlier.c.contact_id == table.c.contact_id,
        earlier.c.id < table.c.id,
        earlier.c.status.in_((outbox.QUEUED, outbox.SENDING)),
        earlier.c.priority <= table.c.priority,
    )
    query = (
        sa.select(table.c.id)
        .where(
            table.c.status == outbox.QUEUED,
            table.c.channel.in_(sorted(channels)),
            table.c.next_attempt_at <= now,
            ~waiting_before,
        )
        .order_by(table.c.priority, table.c.id)
        .limit(limit)
    )
    return query.with_for_update(skip_locked=True, of=table) if lock else query


async def claim(
    engine: AsyncEngine,
    *,
    channels: Collection[Channel],
    limit: int,
    name: str,
    now: datetime,
    lease: timedelta,
    texts: MutableMapping[int, bytes],
    due: MutableMapping[Channel, datetime] | None = None,
) -> list[Claimed]:
    """Take up to `limit` rows that may leave now for `name`, replies first, in the order they leave.

    `texts` caches announcements' sealed texts across claims: each is sealed once and never changes.
    With `due`, a claim that finds fewer than `limit` rows sets there, for each of `channels`, the earliest
    time a queued row that may not leave yet may (or removes the channel when none waits).
    """
    if limit <= 0 or not channels:
        return []
    table = _outbox()
    async with transaction(engine) as db:
        connection = await db.connection()
        query = _waiting(channels, limit, now, lock=not is_sqlite(engine))
        ids = list((await connection.execute(query)).scalars())
        if due is not None and len(ids) < limit:
            for channel in channels:
                after = (await connection.execute(_next_due(channel, now))).scalar()
                if after is None:
                    due.pop(channel, None)
                else:
                    due[channel] = after
        if not ids:
            return []
        marked = (
            sa.update(table)
            .where(table.c.id.in_(ids))
            .values(
                status=outbox.SENDING,
                claimed_by=name,
                lease_until=now + lease,
                attempts=table.c.attempts + 1,
            )
            .returning(
                table.c.id,
                table.c.channel,
                table.c.contact_id,
                table.c.kind,
                table.c.priority,
                table.c.attempts,
                table.c.ephemeral,
                table.c.announcement_text_id,
                table.c.address,
                table.c.body,
            )
        )
        rows = [Claimed(*row) for row in (await connection.execute(marked)).all()]
        rows = await _with_bulk_parts(connection, rows, texts)
    return sorted(rows, key=lambda r: (r.priority, r.id))


def _next_due(channel: Channel, now: datetime) -> sa.Select[Any]:
    """When the first queued row of `channel` not due yet is: one step along ix_outbox_pending."""
    table = _outbox()
    return sa.select(sa.func.min(table.c.next_attempt_at)).where(
        table.c.status == outbox.QUEUED, table.c.next_attempt_at > now, table.c.channel == channel
    )


async def _with_bulk_parts(
    connection: AsyncConnection, rows: list[Claimed], texts: MutableMapping[int, bytes]
) -> list[Claimed]:
    """Bulk rows of an announcement given her sealed address and the announcement's sealed text."""
    bulk = [r for r in rows if r.announcement_text_id is not None]
    if not bulk:
        return rows
    contacts_table = Contact.__table__  # type: ignore[attr-defined]
    contact_ids = sorted({r.contact_id for r in bulk if r.contact_id is not None})
    contacts = {
        contact_id: (address, not opted_out and reachable)
        for contact_id, address, opted_out, reachable in (
            await connection.execute(
                sa.select(
                    contacts_table.c.id,
                    contacts_table.c.address,
                    contacts_table.c.opted_out,
                    contacts_table.c.reachable,
                ).where(contacts_table.c.id.in_(contact_ids))
            )
        ).all()
    }
    missing = sorted({r.announcement_text_id or 0 for r in bulk} - texts.keys())
    if missing:
        texts_table = AnnouncementText.__table__  # type: ignore[attr-defined]
        query = sa.select(texts_table.c.id, texts_table.c.body).where(texts_table.c.id.in_(missing))
        texts.update((text_id, body) for text_id, body in (await connection.execute(query)).all())
    completed: list[Claimed] = []
    for row in rows:
        if row.announcement_text_id is None:
            completed.append(row)
            continue
        contact = contacts.get(row.contact_id)
        body = texts.get(row.announcement_text_id)
        if contact is None or body is None:  # erased meanwhile: there is nobody to send it to
            completed.append(replace(row, address=b"", body=b"", reachable=False))
        else:
            completed.append(replace(row, address=contact[0], body=body, reachable=contact[1]))
    return completed
