"""One active sender per channel credential, so a provider's rate limit holds across processes.

PostgreSQL: a session advisory lock on a connection of its own, whose session the server ends after
`hold` seconds without a query (`idle_session_timeout`, PostgreSQL 14 or later). The holder renews it
by querying every `hold / 4` seconds. So the hold is a lease the server enforces by its own clock:
- a sender that freezes (SIGSTOP, a host cut off from the database) stops renewing; within `hold` seconds
  of its last query PostgreSQL ends its session, the lock goes with it, and a standby takes it at its next
  try. Without the timeout, PostgreSQL would notice a dead peer only by TCP keepalive, hours later by
  default; and keepalives would not help against SIGSTOP at all, since a stopped process's kernel still
  answers them.
- the holder counts its lease from the moment it sent its last successful query, on a clock that keeps
  running while the process is stopped or the machine sleeps, and trusts it for less than `hold`: the
  server's count starts later (when that query finished), so the holder always believes it has lost the
  lease before the server can hand it to anyone else. A sender that wakes up after a freeze finds its
  lease over before it sends again (`holds()` is asked right before every send); only a send already on
  the wire when it froze can repeat, and the standby counts it as in doubt.
Why not a lease row: it needs its own table, a renewal transaction, and the holder's and standby's clocks
(or the database's) compared on every takeover, to get what the server already gives a session lock.

A process that would rather wait for the lock than ask again and again (bot.leader) waits inside the
database, in `pg_advisory_lock` bounded by a `lock_timeout`: it gets the lock the moment the holder's
session ends.

SQLite: an exclusive lock on a file beside the database; one dispatcher per database file, so there is no
standby to take over. A stopped dispatcher keeps its file lock (the kernel holds it for the stopped
process) and nothing is sent until it is continued or killed; a killed one releases it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.store.db import is_sqlite

log = logging.getLogger(__name__)
DEFAULT_HOLD = 10.0  # seconds: how long a frozen sender can keep the others waiting
TRUSTED_SHARE = 0.75  # of the hold, counted from the last renewal: the holder stops before the server does
CLOSE_TIMEOUT = 2.0  # seconds for closing a lock's connection politely, after that it is just dropped
LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of a lock wait that reached lock_timeout


class Hold(enum.Enum):
    """What an attempt to become (or stay) the active sender found."""

    NONE = "none"  # another process sends on this credential, or the database cannot say
    KEPT = "kept"  # this process was and still is the one
    TAKEN = "taken"  # it has just become the one: what its predecessor had in flight is in doubt


class SenderLock(Protocol):
    """Held while this process may send on one credential."""

    async def acquire(self) -> Hold:
        """Try to become the active sender, or stay it."""
        ...

    def holds(self) -> bool:
        """Whether this process may send now; asked right before every send, so it does no I/O."""
        ...

    async def release(self) -> None:
        """Stop being the active sender."""
        ...


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for an advisory lock."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)


def boot_clock() -> float:
    """Seconds on a clock that keeps counting while this process is stopped or the machine sleeps."""
    if hasattr(time, "CLOCK_BOOTTIME"):
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    return time.monotonic()


@dataclass
class AdvisoryLock:
    """A PostgreSQL session advisory lock on a connection of its own, held as a renewed lease."""

    engine: AsyncEngine
    name: str
    hold: float = DEFAULT_HOLD
    clock: Callable[[], float] = boot_clock
    # What the log says when the lock is lost, and what stops then (never the credential in the name).
    said: tuple[str, str] = ("the sender lock", "stopping sending on it")
    _connection: AsyncConnection | None = field(default=None, init=False)
    _held: bool = field(default=False, init=False)
    _trusted_until: float = field(default=0.0, init=False)
    _keeper: asyncio.Task[None] | None = field(default=None, init=False)
    _waits_ms: str | None = field(default=None, init=False)  # the lock_timeout set on this connection

    @property
    def _renew_every(self) -> float:
        return self.hold / 4

    def holds(self) -> bool:
        return self._held and self.clock() < self._trusted_until

    async def acquire(self, wait: float = 0.0) -> Hold:
        """Try to become the holder, or stay it. With `wait` seconds, wait that long inside the database for
        the holder to let go: one statement, which ends the moment the holder's session does."""
        if self._keeper is not None:
            if not self._keeper.done():
                # A late renewal makes this NONE for a moment; the session (and the lock) may still be ours.
                return Hold.KEPT if self.holds() else Hold.NONE
            await self._drop()  # the keeper found the session gone, and the lock with it
        try:
            if self._connection is None:
                self._connection = await self._connect()
            started = self.clock()
            if wait > 0:
                taken = await self._wait(self._connection, wait)
                if taken:  # the lease counts from a query sent now, not from when the wait began
                    started = self.clock()
                    await asyncio.wait_for(self._connection.execute(sa.text("SELECT 1")), self._renew_every)
            else:
                result = await asyncio.wait_for(
                    self._connection.execute(
                        sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": lock_key(self.name)}
                    ),
                    self._renew_every,
                )
                taken = bool(result.scalar())
        except BaseException:
            await self._drop()
            raise
        if not taken:
            return Hold.NONE
        self._held, self._trusted_until = True, started + self.hold * TRUSTED_SHARE
        self._keeper = asyncio.create_task(self._keep(self._connection))
        return Hold.TAKEN

    async def release(self) -> None:
        connection = self._connection
        if self._held and connection is not None:
            await self._stop_keeper()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    connection.execute(
                        sa.text("SELECT pg_advisory_unlock(:key)"), {"key": lock_key(self.name)}
                    ),
                    CLOSE_TIMEOUT,
                )
        await self._drop()

    async def _connect(self) -> AsyncConnection:
        connection = await self.engine.connect()
        try:
            # Autocommit: the session is never idle inside a transaction, where the timeout would not count.
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(
                sa.text("SELECT set_config('idle_session_timeout', :ms, false)"),
                {"ms": str(max(1, round(self.hold * 1000)))},
            )
        except BaseException:
            await _discard(connection)
            raise
        return connection

    async def _wait(self, connection: AsyncConnection, wait: float) -> bool:
        """Wait up to `wait` seconds for the lock in `pg_advisory_lock`; whether it came."""
        milliseconds = str(max(1, round(wait * 1000)))
        if self._waits_ms != milliseconds:
            # The server checks the socket while the statement waits: a waiter that dies leaves no backend
            # behind to take the lock for nobody.
            await connection.execute(
                sa.text(
                    "SELECT set_config('lock_timeout', :ms, false), "
                    "set_config('client_connection_check_interval', '1000', false)"
                ),
                {"ms": milliseconds},
            )
            self._waits_ms = milliseconds
        try:
            await asyncio.wait_for(  # the client's own bound, for a server that went silent
                connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": lock_key(self.name)}),
                wait + self._renew_every,
            )
        except sa.exc.DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
                return False
            raise
        return True

    async def _keep(self, connection: AsyncConnection) -> None:
        """Renew the lease until the session fails to answer in time; then it is lost."""
        while True:
            await asyncio.sleep(self._renew_every)
            started = self.clock()
            try:
                await asyncio.wait_for(connection.execute(sa.text("SELECT 1")), self._renew_every)
            except Exception as exc:
                log.warning("lost %s (%s): %s", self.said[0], type(exc).__name__, self.said[1])
                self._held = False
                return
            self._trusted_until = started + self.hold * TRUSTED_SHARE

    async def _stop_keeper(self) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is not None and not keeper.done():
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _drop(self) -> None:
        await self._stop_keeper()
        self._held = False
        connection, self._connection = self._connection, None
        self._waits_ms = None
        if connection is not None:
            await _discard(connection)


async def _discard(connection: AsyncConnection) -> None:
    """Close a lock's connection for good: never back to the pool, where its timeout would follow it."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(connection.invalidate(), CLOSE_TIMEOUT)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(connection.close(), CLOSE_TIMEOUT)


@dataclass
class FileLock:
    """An exclusive lock on a file: for SQLite, where one dispatcher serves one database file."""

    path: Path
    _fd: int | None = field(default=None, init=False)

    def holds(self) -> bool:
        return self._fd is not None

    async def acquire(self) -> Hold:
        if self._fd is not None:
            return Hold.KEPT
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return Hold.NONE
        self._fd = fd
        return Hold.TAKEN

    async def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def sender_lock(
    engine: AsyncEngine, channel: str, credential: str, *, hold: float = DEFAULT_HOLD
) -> SenderLock:
    """The right kind of lock for this database; on PostgreSQL a frozen holder loses it within `hold` s."""
    name = f"{channel}:{credential}"
    if is_sqlite(engine):
        database = engine.url.database or ":memory:"
        folder = Path(database).parent if database != ":memory:" else Path(".")
        safe = hashlib.sha256(f"{database}:{name}".encode()).hexdigest()[:16]
        return FileLock(folder / f".dispatch-{safe}.lock")
    said = (f"the sender lock for {channel}", "stopping sending on it")
    return AdvisoryLock(engine, name, hold=hold, said=said)
