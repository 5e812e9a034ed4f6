"""One leader among every `hamroh serve` process and worker on a database: it alone runs the dispatcher and
the jobs loop (case alerts and timeouts, purge, retention, course reminders, the announcement schedule,
report rollups). The other workers answer webhooks and pages, and nothing else.

PostgreSQL: the leader holds a session advisory lock on a connection of its own, renewed as a lease
(bot.leases.AdvisoryLock: the server ends a session that has not renewed for `hold` seconds). The others
wait for that lock inside the database, in one `pg_advisory_lock` statement bounded by a lock timeout of
PATIENCE seconds: a waiting worker sends one statement every PATIENCE seconds and wakes for nothing else,
and takes over the moment the leader's session ends: at once when the leader's process dies (the kernel
closes its connection), within `hold` seconds when it freezes or its host is cut off (the server ends the
session that stopped renewing).
Why not a lock per job: every worker would wake every round to find the work taken, and each standby
dispatcher would ask for its sender locks again and again. The leader itself sleeps when there is nothing
to do: its dispatcher is woken by the database when a row is written (bot.outbound.wakeup).

SQLite: one process per database file (`hamroh serve` refuses more workers), which always leads.

The jobs keep their row lock (bot.cases.jobs.run_once) and the dispatcher its sender locks: the leader
lock decides who runs them; those locks still make a deposed leader's last round harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from bot.config import Settings
from bot.leases import AdvisoryLock, Hold
from bot.runtime import run_case_jobs, run_dispatcher
from bot.service import Hamroh
from bot.store.db import async_url, create_engine

log = logging.getLogger(__name__)
T = TypeVar("T")
LOCK_NAME = "hamroh:leader"
PATIENCE = 30.0  # seconds a waiting worker spends in one statement
RETRY = 5.0  # seconds before trying again when the database did not answer, or the leader's work failed
CHECK = 1.0  # seconds between the leader's looks at its lease (no I/O: the lease renews itself)

Work = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


async def serve_background(
    settings: Settings, hamroh: Hamroh, stop: asyncio.Event, *, dispatch: bool, case_jobs: bool
) -> None:
    """Run the dispatcher (with `dispatch`) and the jobs loop (with `case_jobs`) whenever this process
    leads, until `stop` is set."""

    async def work(resign: asyncio.Event) -> None:
        jobs = []
        if dispatch:  # unless a separate `hamroh dispatch` sends
            jobs.append(run_dispatcher(settings, hamroh, resign))
        if case_jobs:
            jobs.append(run_case_jobs(settings, hamroh, resign))
        await _all_or_none(resign, jobs)

    await lead(settings.database_url, work, stop, hold=settings.dispatch_sender_hold_seconds)


async def lead(url: str, work: Work, stop: asyncio.Event, *, hold: float, patience: float = PATIENCE) -> None:
    """Run `work` whenever this process leads among all on the database at `url`, until `stop` is set.

    `work` gets an event that is set when it must end: at `stop`, or when the lead is lost. A frozen
    leader loses the lead `hold` seconds after its last renewal."""
    if async_url(url).get_backend_name() == "sqlite":
        while not stop.is_set():
            if await _while_leading(work, stop, holds=None):
                await _sleep(stop, RETRY)
        return
    engine = create_engine(
        url, pool_size=1, max_overflow=0
    )  # no command timeout: the wait is long on purpose
    lock = AdvisoryLock(engine, LOCK_NAME, hold=hold, said=("the lead", "handing the lead over"))
    try:
        while not stop.is_set():
            try:
                got = await _unless_stopped(stop, lock.acquire(wait=patience))
            except Exception as exc:  # the database is away: wait, then ask again
                log.warning("cannot ask who leads (%s); trying again", type(exc).__name__)
                await _sleep(stop, RETRY)
                continue
            if got is None or got is Hold.NONE or stop.is_set():
                continue
            log.info("leading (pid %d): the dispatcher and the jobs run in this process", os.getpid())
            failed = await _while_leading(work, stop, holds=lock.holds)
            await lock.release()
            if not stop.is_set():
                log.warning("no longer leading (pid %d): another process takes over", os.getpid())
            if failed:  # let another process try; this one asks again after a pause
                await _sleep(stop, RETRY)
    finally:
        await lock.release()
        await engine.dispose()


async def _while_leading(work: Work, stop: asyncio.Event, *, holds: Callable[[], bool] | None) -> bool:
    """Run `work` until `stop` is set, the lease is lost (`holds` says no), or `work` ends; whether it
    failed. Without a lease, nothing wakes until one of the others happens."""
    resign = asyncio.Event()
    task = asyncio.create_task(work(resign))
    stopped = asyncio.create_task(stop.wait())
    try:
        while not task.done() and not stop.is_set() and (holds is None or holds()):
            timeout = None if holds is None else CHECK
            await asyncio.wait([task, stopped], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        resign.set()
    try:
        await task
    except Exception:
        log.exception("the dispatcher or the jobs stopped with an error: starting them again shortly")
        return True
    return False


async def _all_or_none(stop: asyncio.Event, jobs: Sequence[Awaitable[None]]) -> None:
    """Run `jobs` until `stop` is set; if one fails, stop the others and raise its error."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    if not tasks:
        await stop.wait()
        return
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        stop.set()
        await asyncio.wait(tasks)
    for task in tasks:
        task.result()  # the first error, if any


async def _unless_stopped(stop: asyncio.Event, step: Awaitable[T]) -> T | None:
    """The result of `step`, or None (and `step` cancelled) if `stop` is set first."""
    task = asyncio.ensure_future(step)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None
    return task.result()


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
