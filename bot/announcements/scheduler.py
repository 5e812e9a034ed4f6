"""The clock of announcements: enqueue those whose time has come, and call an announcement sent once
nothing of it is waiting any more.

Runs as a job beside the case jobs, once across processes (bot.cases.jobs.run_once). When nothing is due
a run costs two indexed reads of the announcements' status.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.announcements import enqueue, outcomes
from bot.cases import jobs
from bot.conversation.flows import FlowSet
from bot.store import Announcement
from bot.store.crypto import Vault

log = logging.getLogger(__name__)
JOB = "announcements"


@dataclass
class Done:
    """What one run did (logged when it did anything)."""

    enqueued: int = 0  # announcements
    recipients: int = 0
    finished: int = 0
    gone: int = 0  # recipients who erased their data before their message left

    def __bool__(self) -> bool:
        return any(vars(self).values())


async def tick(db: AsyncSession, vault: Vault, flows: FlowSet, *, now: datetime) -> Done:
    """Enqueue every scheduled announcement that is due; mark finished ones sent."""
    done = Done()
    due = (
        await db.exec(
            select(Announcement)
            .where(Announcement.status == "scheduled", col(Announcement.send_at) <= now)
            .order_by(col(Announcement.send_at))
            .with_for_update()
        )
    ).all()
    for announcement in due:
        try:
            async with db.begin_nested():  # one that fails is tried again next round; the others go
                done.recipients += await enqueue.enqueue(db, vault, flows, announcement, now=now)
        except Exception as exc:
            log.warning(
                "announcement %s not enqueued (%s); trying again", announcement.id, type(exc).__name__
            )
            continue
        done.enqueued += 1
    sending = (
        await db.exec(select(Announcement).where(Announcement.status == "sending").with_for_update())
    ).all()
    for announcement in sending:
        assert announcement.id is not None
        done.gone += await outcomes.gone(db, announcement_id=announcement.id, now=now)
        if await outcomes.waiting(db, announcement_id=announcement.id) == 0:
            announcement.status = "sent"
            db.add(announcement)
            done.finished += 1
    return done


async def run_if_due(
    engine: AsyncEngine, vault: Vault, flows: FlowSet, *, every: timedelta, now: datetime
) -> Done | None:
    """Run `tick` unless another process did less than `every` ago (then None)."""

    async def work(db: AsyncSession) -> Done:
        return await tick(db, vault, flows, now=now)

    done = await jobs.run_once(engine, JOB, every=every, now=now, work=work)
    if done:
        log.info("announcements: %s", done)
    return done
