"""Her news subscriptions as the store keeps them: one row per topic she asked for.

Her district is her contact's (changing it narrows her news); `Contact.subscribed` says she has any
topic, which retention reads. Only her own turns change these rows (and erasing her removes them).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.store import NEWS_TOPICS, Contact, Subscription


async def set_topics(db: AsyncSession, contact: Contact, topics: Iterable[str], now: datetime) -> None:
    """Her news topics are now exactly `topics` (unknown ones ignored): rows added and removed to match,
    and her contact marked subscribed when any is left. Topics she kept keep their first date."""
    assert contact.id is not None
    wanted = {t for t in topics if t in NEWS_TOPICS}
    held = set(await topics_of(db, contact.id))
    gone = held - wanted
    if gone:
        await db.exec(
            sa.delete(Subscription).where(
                col(Subscription.contact_id) == contact.id, col(Subscription.topic).in_(sorted(gone))
            )
        )
    for topic in sorted(wanted - held):
        db.add(Subscription(contact_id=contact.id, topic=topic, created_at=now))
    contact.subscribed = bool(wanted)
    db.add(contact)


async def topics_of(db: AsyncSession, contact_id: int) -> list[str]:
    """The topics she gets news of, in the order of NEWS_TOPICS."""
    query = select(Subscription.topic).where(Subscription.contact_id == contact_id)
    found = set((await db.exec(query)).all())
    return [t for t in NEWS_TOPICS if t in found]
