"""Waiting for the console's feed across processes: one listener per process, many subscribers.

Every change a console shows is a `ConsoleEvent` row (bot.cases.feed). A process learns of new rows from
the database, never from another process's memory:
- PostgreSQL: a dedicated asyncpg connection LISTENs on `feed.CHANNEL`. A notification only wakes the
  listener; the rows are read from the table. NOTIFY is delivered at commit, in commit order, which is not
  always id order (a turn that took id 10 may commit after one that took 11): the notified ids tell which
  rows below the cursor arrived late. A dropped connection is reopened and the rows missed meanwhile read.
- SQLite: the table is polled (one writer at a time, so rows commit in id order), through an engine of its
  own whose reads never take the write lock.
Idle costs nothing: with no subscriber nothing is read (SQLite does not poll; PostgreSQL keeps one quiet
connection, pinged now and then so that a connection that died silently is noticed).

Each subscriber has a bounded buffer: one that falls too far behind (a slow browser) loses its buffer and
gets a single `reload` event instead, so memory never grows with a stalled client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.cases import feed
from bot.store import ConsoleEvent
from bot.store.db import SQLITE_BUSY_TIMEOUT_MS, is_sqlite

log = logging.getLogger(__name__)

RELOAD = "reload"  # the kind of the event a subscriber gets instead of what it was too slow to take
POLL_SECONDS = 0.5
QUEUE_SIZE = 256
PING_SECONDS = 30.0
RETRY_SECONDS = 1.0
STOP_SECONDS = 2.0
_REMEMBERED = 4096  # ids recently fanned out: a late notification for one of them is not sent twice


@dataclass(frozen=True)
class FeedEvent:
    """A feed row as subscribers get it (detached from any session). Never her words or her address."""

    id: int
    kind: str
    case_id: int | None = None
    priority: str | None = None
    queue: str | None = None
    at: datetime | None = None

    @classmethod
    def of(cls, row: ConsoleEvent) -> FeedEvent:
        assert row.id is not None
        return cls(row.id, row.kind, row.case_id, row.priority, row.queue, row.at)


class Subscription:
    """What one client waits on: the events after the id it had seen, then each new one as it comes."""

    def __init__(self, listener: Listener, after: int, size: int) -> None:
        self.after = after
        self._listener = listener
        self._size = size
        self._buffer: deque[FeedEvent] = deque()
        self._backlog: set[int] = set()
        self._given: set[int] = set()
        self._ready = asyncio.Event()
        self._overflowed = False

    def _push(self, events: Collection[FeedEvent]) -> None:
        fresh = [e for e in events if e.id > self.after]
        if not fresh:
            return
        if len(self._buffer) + len(fresh) > self._size:
            self._buffer.clear()
            self._overflowed = True
        else:
            self._buffer.extend(fresh)
        self._ready.set()

    def _start_with(self, backlog: list[FeedEvent], *, too_many: bool) -> None:
        if too_many:
            self._buffer.clear()
            self._overflowed = True
        else:
            self._backlog = {e.id for e in backlog}
            self._buffer.extendleft(reversed(backlog))
        if self._buffer or self._overflowed:
            self._ready.set()

    @property
    def ended(self) -> bool:
        """Whether the process is stopping: the client should go (and come back to another process)."""
        return self._listener.ending

    async def next(self, within: float | None = None) -> list[FeedEvent]:
        """The events waiting (oldest first), or after `within` seconds an empty list. A single
        `reload` event (id: the newest id known) means some were dropped: show everything afresh.
        Returns at once, empty, once `ended`."""
        if self.ended:
            return []
        if not self._ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), within)
        self._ready.clear()
        if self._overflowed:
            self._overflowed = False
            self._buffer.clear()
            newest = max(self._listener.cursor or 0, self.after)
            self.after = newest
            return [FeedEvent(newest, RELOAD)]
        events = []
        while self._buffer:
            event = self._buffer.popleft()
            if event.id in self._backlog:  # committed late: read with the backlog, then woken for again
                if event.id in self._given:
                    continue
                self._given.add(event.id)
            events.append(event)
        return events


class Listener:
    """One per process: learns of new feed rows from the database and hands them to every subscriber."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        poll_seconds: float = POLL_SECONDS,
        queue_size: int = QUEUE_SIZE,
        ping_seconds: float = PING_SECONDS,
        retry_seconds: float = RETRY_SECONDS,
        connect: Callable[[str], Any] | None = None,
    ) -> None:
        self.engine = engine
        self.poll_seconds = poll_seconds
        self.queue_size = queue_size
        self.ping_seconds = ping_seconds
        self.retry_seconds = retry_seconds
        self.cursor: int | None = None  # the newest id handed out (None: not following the feed now)
        self.connected = asyncio.Event()  # PostgreSQL: LISTEN is in place
        self.ending = False  # the process is stopping: subscriptions end
        self._sqlite = is_sqlite(engine)
        self._reader = _reader_for(engine) if self._sqlite else engine
        self._connect = connect or asyncpg.connect
        self._subscribers: set[Subscription] = set()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._notified: set[int] = set()
        self._handed: deque[int] = deque(maxlen=_REMEMBERED)
        self._handed_set: set[int] = set()
        self._task: asyncio.Task[None] | None = None

    @property
    def subscribers(self) -> int:
        """How many clients are subscribed now."""
        return len(self._subscribers)

    def start(self) -> None:
        """Run the listener in the background (again after stop(); a second start() does nothing)."""
        if self._task is None or self._task.done():
            self._stop.clear()
            self.ending = False
            self._task = asyncio.create_task(self._run(), name="console-listener")

    async def stop(self) -> None:
        """Stop listening and close the connections."""
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            task, self._task = self._task, None
            with contextlib.suppress(TimeoutError):  # cancelled then: a connection attempt may hang
                await asyncio.wait_for(task, STOP_SECONDS)
        if self._sqlite:
            await self._reader.dispose()

    def end_subscriptions(self) -> None:
        """The process is about to stop: wake every subscriber and tell it to go. Long-lived clients
        (event streams) would otherwise hold a graceful shutdown open."""
        self.ending = True
        for subscription in self._subscribers:
            subscription._ready.set()

    async def newest(self) -> int:
        """The newest event id in the table (0 when there is none)."""
        async with AsyncSession(self._reader) as db:
            return await feed.last_event_id(db)

    @contextlib.asynccontextmanager
    async def subscribe(self, after: int | None = None) -> AsyncIterator[Subscription]:
        """Events after `after` (a reconnecting browser's Last-Event-ID), or from now when None."""
        self.start()
        async with self._lock:
            if self.cursor is None:
                self.cursor = await self.newest()
            upto = self.cursor
            subscription = Subscription(self, upto if after is None else after, self.queue_size)
            self._subscribers.add(subscription)
        self._wake.set()  # SQLite: polling starts with the first subscriber
        try:
            if subscription.after < upto:
                rows = await self._read(after=subscription.after, upto=upto, limit=self.queue_size + 1)
                subscription._start_with(rows[: self.queue_size], too_many=len(rows) > self.queue_size)
            yield subscription
        finally:
            self._subscribers.discard(subscription)

    # --- the loop ------------------------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._sqlite:
                    await self._poll()
                else:
                    await self._listen()
            except Exception as exc:
                # Never die: a database that stops answering for a while must not end live updates.
                log.warning("the console listener failed (%s); trying again", type(exc).__name__)
                self.connected.clear()
                await self._pause(self.retry_seconds)

    async def _poll(self) -> None:
        while not self._stop.is_set():
            if not self._subscribers:
                self.cursor = None
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._fetch()
            await self._pause(self.poll_seconds)

    async def _listen(self) -> None:
        connection = await self._connect(_asyncpg_dsn(self.engine.url))
        lost = asyncio.Event()

        def on_notify(_connection: object, _pid: int, _channel: str, payload: str) -> None:
            with contextlib.suppress(ValueError):
                self._notified.add(int(payload))
            self._wake.set()

        def on_lost(_connection: object) -> None:
            lost.set()
            self._wake.set()

        try:
            connection.add_termination_listener(on_lost)
            await connection.add_listener(feed.CHANNEL, on_notify)
            self.connected.set()
            await self._fetch()  # what committed while no connection listened
            while not self._stop.is_set() and not lost.is_set():
                if await self._pause(self.ping_seconds, wake=True):
                    await self._fetch()
                elif not lost.is_set():
                    await connection.fetchval("SELECT 1", timeout=10)
            if lost.is_set() and not self._stop.is_set():
                log.warning("the console listener lost its database connection; reconnecting")
        finally:
            self.connected.clear()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5)

    async def _pause(self, seconds: float, *, wake: bool = False) -> bool:
        """Sleep `seconds`, less if stopped (or woken, with `wake`); whether it was woken."""
        waiter = self._wake if wake else self._stop
        try:
            await asyncio.wait_for(waiter.wait(), seconds)
        except TimeoutError:
            return False
        if wake:
            self._wake.clear()
        return not self._stop.is_set()

    async def _fetch(self) -> None:
        """Read what is new and hand it to every subscriber."""
        async with self._lock:
            late = {i for i in self._notified if self.cursor is not None and i <= self.cursor}
            self._notified.clear()
            if not self._subscribers:
                self.cursor = None  # nobody follows: the next subscriber starts from the newest row
                return
            if self.cursor is None:
                self.cursor = await self.newest()
                return
            rows = await self._read(after=self.cursor, ids=late - self._handed_set)
            rows = [r for r in rows if r.id not in self._handed_set]
            if not rows:
                return
            for row in rows:
                if len(self._handed) == self._handed.maxlen:
                    self._handed_set.discard(self._handed[0])
                self._handed.append(row.id)
                self._handed_set.add(row.id)
            self.cursor = max(self.cursor, *(r.id for r in rows))
            for subscription in self._subscribers:
                subscription._push(rows)

    async def _read(
        self, *, after: int, upto: int | None = None, ids: Collection[int] = (), limit: int = 1000
    ) -> list[FeedEvent]:
        newer = col(ConsoleEvent.id) > after
        if upto is not None:
            newer = sa.and_(newer, col(ConsoleEvent.id) <= upto)
        where = sa.or_(newer, col(ConsoleEvent.id).in_(sorted(ids))) if ids else newer
        query = select(ConsoleEvent).where(where).order_by(col(ConsoleEvent.id)).limit(limit)
        async with AsyncSession(self._reader) as db:
            return [FeedEvent.of(row) for row in (await db.exec(query)).all()]


def _reader_for(engine: AsyncEngine) -> AsyncEngine:
    """SQLite: an engine whose reads begin no IMMEDIATE transaction, so polling never waits for writers
    (WAL lets readers go on while one writes)."""
    return create_async_engine(engine.url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})


def _asyncpg_dsn(url: URL) -> str:
    """The engine's URL as asyncpg takes it (SQLAlchemy's `ssl` option is asyncpg's `sslmode`)."""
    query = dict(url.query)
    ssl = query.pop("ssl", None)
    if ssl is not None:
        query["sslmode"] = ssl
    return url.set(drivername="postgresql", query=query).render_as_string(hide_password=False)
