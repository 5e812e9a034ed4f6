"""The clock of cases: alert again about urgent cases nobody took, about active cases staff went silent
on (then return them to the queue), close waiting cases she has left, and purge old closed cases.

Runs once across all processes: the job's row in `job_runs` is taken FOR UPDATE (on SQLite every write
transaction already holds the one write lock), and a process that finds it ran recently does nothing.
When nothing is due, a run costs one small transaction and a few indexed reads.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.cases import alerts, events, feed, intake
from bot.store import Case, ConsoleEvent, JobRun
from bot.store.crypto import Vault
from bot.store.db import transaction

log = logging.getLogger(__name__)
T = TypeVar("T")
FEED_KEPT = timedelta(days=2)  # a browser away longer than this reloads the page anyway


@dataclass(frozen=True)
class Timing:
    """How long things may wait before a job acts."""

    urgent_unclaimed: timedelta = timedelta(minutes=5)
    active_silent: timedelta = timedelta(minutes=30)
    waiting_abandoned: timedelta = timedelta(hours=72)
    transcript_kept: timedelta = timedelta(days=30)


@dataclass
class Done:
    """What one run did (logged when it did anything)."""

    realerted: int = 0
    silent_alerted: int = 0
    requeued: int = 0
    abandoned: int = 0
    purged: int = 0

    def __bool__(self) -> bool:
        return any(vars(self).values())


async def run_if_due(
    engine: AsyncEngine,
    vault: Vault,
    *,
    timing: Timing,
    staff_chat: str | None,
    every: timedelta,
    now: datetime,
) -> Done | None:
    """Run the case jobs unless another process ran them less than `every` ago (then None)."""
    try:
        async with transaction(engine) as db:
            if not await _take_turn(db, "cases", every, now):
                return None
            done = Done()
            await _urgent_unclaimed(db, vault, timing, staff_chat, now, done)
            await _active_silent(db, vault, timing, staff_chat, now, done)
            await _waiting_abandoned(db, vault, timing, now, done)
            done.purged = await purge(db, timing.transcript_kept, now)
    except IntegrityError:  # two processes made the job's first row at once: the other one runs it
        return None
    if done:
        log.info("case jobs: %s", done)
    return done


async def run_once(
    engine: AsyncEngine,
    name: str,
    *,
    every: timedelta,
    now: datetime,
    work: Callable[[AsyncSession], Awaitable[T]],
) -> T | None:
    """Run `work` in one transaction unless another process ran job `name` less than `every` ago (None)."""
    try:
        async with transaction(engine) as db:
            if not await _take_turn(db, name, every, now):
                return None
            return await work(db)
    except IntegrityError:  # two processes made the job's first row at once: the other one runs it
        return None


async def _take_turn(db: AsyncSession, name: str, every: timedelta, now: datetime) -> bool:
    row = (await db.exec(select(JobRun).where(JobRun.name == name).with_for_update())).first()
    if row is None:
        db.add(JobRun(name=name, ran_at=now))
        await db.flush()
        return True
    if now - row.ran_at < every:
        return False
    row.ran_at = now
    db.add(row)
    return True


async def _urgent_unclaimed(
    db: AsyncSession, vault: Vault, timing: Timing, staff_chat: str | None, now: datetime, done: Done
) -> None:
    cutoff = now - timing.urgent_unclaimed
    query = select(Case).where(
        Case.status == "waiting",
        Case.priority == intake.URGENT,
        col(Case.waiting_since) <= cutoff,
        sa.or_(col(Case.alerted_at).is_(None), col(Case.alerted_at) <= cutoff),
    )
    for case in (await db.exec(query)).all():
        minutes = int((now - case.waiting_since).total_seconds() // 60)
        case.supervisors_alerted = True
        text = alerts.STILL_UNCLAIMED.format(id=case.id, minutes=minutes)
        await alerts.alert(db, vault, case=case, text=text, staff_chat=staff_chat, now=now)
        done.realerted += 1


async def _active_silent(
    db: AsyncSession, vault: Vault, timing: Timing, staff_chat: str | None, now: datetime, done: Done
) -> None:
    cutoff = now - timing.active_silent
    silent_since = sa.func.coalesce(col(Case.last_staff_at), col(Case.claimed_at))
    query = select(Case).where(Case.status == "active", silent_since <= cutoff)
    for case in (await db.exec(query)).all():
        since = max(t for t in (case.last_staff_at, case.claimed_at, case.waiting_since) if t is not None)
        if now - since >= 2 * timing.active_silent:
            case.status, case.counsellor_id, case.claimed_at, case.waiting_since = "waiting", None, None, now
            db.add(case)
            events.record(db, "returned", case, now)
            await feed.publish(db, "case_returned", case, now)
            done.requeued += 1
        elif case.alerted_at is None or case.alerted_at < since + timing.active_silent:
            minutes = int((now - since).total_seconds() // 60)
            text = alerts.SILENT.format(id=case.id, minutes=minutes)
            await alerts.alert(db, vault, case=case, text=text, staff_chat=None, now=now)
            done.silent_alerted += 1


async def _waiting_abandoned(
    db: AsyncSession, vault: Vault, timing: Timing, now: datetime, done: Done
) -> None:
    cutoff = now - timing.waiting_abandoned
    last_heard = sa.func.coalesce(col(Case.last_her_at), col(Case.opened_at))
    query = select(Case).where(Case.status == "waiting", last_heard <= cutoff)
    hours = int(timing.waiting_abandoned.total_seconds() // 3600)
    for case in (await db.exec(query)).all():
        why = f"Closed: she had not written for {hours} hours and nobody took the case."
        await intake.close_by_system(db, vault, case=case, outcome="no_contact", why=why, now=now)
        done.abandoned += 1


async def purge(db: AsyncSession, kept: timedelta, now: datetime) -> int:
    """Delete cases closed longer ago than `kept`, with their transcripts (case events stay)."""
    old = sa.delete(Case).where(col(Case.status) == "closed", col(Case.closed_at) < now - kept)
    result = await db.exec(old)
    await db.exec(sa.delete(ConsoleEvent).where(col(ConsoleEvent.at) < now - FEED_KEPT))
    return int(result.rowcount or 0)
