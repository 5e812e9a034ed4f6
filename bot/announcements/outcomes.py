"""What became of each recipient: counted from the announcement's own table, moved by the dispatcher
(in the transaction that records the outbox row), by delivery reports, by recovery and by cancelling.

Outcomes: queued, held (waiting for her safe hours), sent, delivered, failed, blocked (opted out or
unreachable since the audience was counted), in_doubt (in flight when a dispatcher died: not sent again),
and cancelled (stopped before it left; reported beside the seven buckets). Before a scheduled announcement's
time its women are only "counted", in no bucket: nobody is queued before its time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.announcements import sql
from bot.store import AnnouncementRecipient, AnnouncementText, OutboxMessage

QUEUED = "queued"
HELD = "held"
SENT = "sent"
DELIVERED = "delivered"
FAILED = "failed"
BLOCKED = "blocked"
IN_DOUBT = "in_doubt"
CANCELLED = "cancelled"
COUNTED = "counted"  # in its audience when it was scheduled; queued, held or blocked once its time comes
BUCKETS = (QUEUED, HELD, SENT, DELIVERED, FAILED, BLOCKED, IN_DOUBT)
WAITING = (QUEUED, HELD)
BATCH = 5000  # ids per statement: well under SQLite's limit of bound parameters


def _recipients() -> sa.Table:
    return AnnouncementRecipient.__table__  # type: ignore[attr-defined,no-any-return]


async def counts(db: AsyncSession, *, announcement_id: int) -> dict[str, int]:
    """Recipients by outcome: the seven buckets, and "cancelled" beside them (each recipient in one)."""
    table = _recipients()
    rows = await sql.rows(
        db,
        sa.select(table.c.outcome, sa.func.count())
        .where(table.c.announcement_id == announcement_id, table.c.outcome != COUNTED)
        .group_by(table.c.outcome),
    )
    result = dict.fromkeys((*BUCKETS, CANCELLED), 0)
    for outcome, count in rows:
        result[outcome] = result.get(outcome, 0) + int(count)
    return result


async def total(db: AsyncSession, *, announcement_id: int) -> int:
    """How many women the announcement has as recipients."""
    table = _recipients()
    count = (
        await sql.run(db, sa.select(sa.func.count()).where(table.c.announcement_id == announcement_id))
    ).one()[0]
    return int(count)


async def waiting(db: AsyncSession, *, announcement_id: int) -> int:
    """Recipients whose message has not left yet (queued or held)."""
    table = _recipients()
    count = (
        await sql.run(
            db,
            sa.select(sa.func.count()).where(
                table.c.announcement_id == announcement_id, table.c.outcome.in_(WAITING)
            ),
        )
    ).one()[0]
    return int(count)


async def record(db: AsyncSession, *, outbox_ids: Iterable[int], outcome: str, now: datetime) -> None:
    """Her recipient row follows its outbox row (call in the transaction that writes the outbox row)."""
    ids = sorted(set(outbox_ids))
    table = _recipients()
    for start in range(0, len(ids), BATCH):
        await sql.run(
            db,
            sa.update(table)
            .where(table.c.outbox_id.in_(ids[start : start + BATCH]))
            .values(outcome=outcome, updated_at=now),
        )


async def delivery_reported(
    db: AsyncSession, *, outbox_id: int, status: str, error_code: str | None, now: datetime
) -> None:
    """A provider's delivery report moves a sent recipient to delivered, failed or blocked."""
    if error_code == "21610":  # she replied STOP at the carrier: unsubscribed
        outcome = BLOCKED
    elif status in ("delivered", "read"):
        outcome = DELIVERED
    elif status in ("undelivered", "failed"):
        outcome = FAILED
    else:
        return  # queued, sent, ...: nothing new about her
    table = _recipients()
    await sql.run(
        db,
        sa.update(table)
        .where(table.c.outbox_id == outbox_id, table.c.outcome.in_((SENT, DELIVERED)))
        .values(outcome=outcome, updated_at=now),
    )


async def cancel_waiting(db: AsyncSession, *, announcement_id: int, now: datetime) -> int:
    """Remove the announcement's outbox rows that have not left (queued or held); their recipients are
    "cancelled". A row already in flight is left to finish and records its own outcome."""
    outbox = OutboxMessage.__table__  # type: ignore[attr-defined]
    texts = AnnouncementText.__table__  # type: ignore[attr-defined]
    text_ids = sa.select(texts.c.id).where(texts.c.announcement_id == announcement_id).scalar_subquery()
    removed = list(
        (
            await sql.run(
                db,
                sa.delete(outbox)
                .where(outbox.c.announcement_text_id.in_(text_ids), outbox.c.status == QUEUED)
                .returning(outbox.c.id),
            )
        ).scalars()
    )
    await record(db, outbox_ids=removed, outcome=CANCELLED, now=now)
    # Counted for a time that has not come: nothing was queued, so nothing is left of them.
    await sql.run(
        db,
        sa.delete(_recipients()).where(
            _recipients().c.announcement_id == announcement_id, _recipients().c.outcome == COUNTED
        ),
    )
    # Recipients never given an outbox row (none, once enqueued in one transaction), or whose row is gone.
    table = _recipients()
    await sql.run(
        db,
        sa.update(table)
        .where(
            table.c.announcement_id == announcement_id,
            table.c.outcome.in_(WAITING),
            table.c.outbox_id.is_(None),
        )
        .values(outcome=CANCELLED, updated_at=now),
    )
    return len(removed)


async def gone(db: AsyncSession, *, announcement_id: int, now: datetime) -> int:
    """Recipients still waiting whose outbox row is gone (she erased her data): "blocked"."""
    table = _recipients()
    outbox = OutboxMessage.__table__  # type: ignore[attr-defined]
    row_exists = sa.exists(sa.select(sa.literal(1)).where(outbox.c.id == table.c.outbox_id))
    result = await sql.run(
        db,
        sa.update(table)
        .where(table.c.announcement_id == announcement_id, table.c.outcome.in_(WAITING), ~row_exists)
        .values(outcome=BLOCKED, updated_at=now),
    )
    return int(result.rowcount or 0)
