"""What the outbox holds: messages by channel, kind and status, and how many were in doubt."""

from __future__ import annotations

import sqlalchemy as sa

from bot.store import OutboxMessage
from bot.store.db import create_engine, transaction


async def report(database_url: str) -> list[str]:
    """Lines for `hamroh outbox status`: counts only, never an address or a text."""
    engine = create_engine(database_url)
    try:
        async with transaction(engine) as db:
            connection = await db.connection()
            t = OutboxMessage.__table__.c  # type: ignore[attr-defined]
            by_status = (
                await connection.execute(
                    sa.select(t.channel, t.kind, t.status, sa.func.count())
                    .group_by(t.channel, t.kind, t.status)
                    .order_by(t.channel, t.kind, t.status)
                )
            ).all()
            doubted = (
                await connection.execute(
                    sa.select(t.kind, sa.func.count()).where(t.in_doubt).group_by(t.kind).order_by(t.kind)
                )
            ).all()
    finally:
        await engine.dispose()
    lines = [f"{channel:<9} {kind:<8} {status:<10} {count:>8}" for channel, kind, status, count in by_status]
    lines.extend(
        f"in doubt  {kind:<8} {'(resent)' if kind != 'bulk' else '(held)':<10} {count:>8}"
        for kind, count in doubted
    )
    return lines or ["the outbox is empty"]
