"""Waking the dispatcher when the outbox may hold something for it, rather than asking the table again and
again.

PostgreSQL: migration 0006's trigger notifies CHANNEL when a statement writes outbox rows or sets when one
leaves, whichever process wrote it (a turn in another worker, a counsellor's message, an announcement),
but only while a dispatcher sleeps: PostgreSQL commits the transactions that notify one at a time, so the
turns of a busy helpline must not notify a dispatcher that is awake anyway. A dispatcher that has nothing
in flight and nothing to claim falls asleep: it takes the advisory lock SLEEPING (the trigger's try for it
then fails, and it notifies), which waits for every writer that found it awake to commit, and looks at
the table once more before it sleeps. Woken to send, it lets go of the lock. The dispatcher listens, and
holds the lock, on an asyncpg connection of its own, made from its engine's URL. The connection is
watched: asyncpg reports a connection the server closed, and the dispatcher pings it now and then (a
connection cut without a word). A dropped one is replaced (its lock went with it), and the bell rings once
the new one listens, for what was written while nobody listened. While it is down, or while another
dispatcher process sleeps on the lock (one for SMS, another for Telegram), the dispatcher looks at the
table as often as it does when nothing can wake it: sending gets slower, never stops.

SQLite: there is no NOTIFY, and the dispatcher usually runs in the process that writes (`hamroh serve`), so
the bell is rung in that process: an engine event marks a transaction that inserts outbox rows or sets
when one leaves, and its commit rings every bell on that engine. Nothing crosses processes: for writes made
elsewhere (`hamroh dispatch` beside serve, or a `hamroh` command) the dispatcher still looks at the table,
less often the longer nothing comes (bot.dispatcher).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.leases import lock_key
from bot.store.db import OUTBOX_TOUCHED as _TOUCHED
from bot.store.db import is_sqlite

log = logging.getLogger(__name__)
CHANNEL = "hamroh_outbox"  # as migrations/versions/0006_outbox_notify.py notifies it
APPLICATION_NAME = "hamroh-outbox-listener"  # how the listening session shows in pg_stat_activity
CONNECT_TIMEOUT = 5.0
PING_TIMEOUT = 10.0
RECONNECT_SECONDS = 2.0  # between attempts to listen again while the database does not answer
CLOSE_TIMEOUT = 2.0
SLEEPING = lock_key("hamroh:outbox:asleep")  # as migrations/versions/0006_outbox_notify.py tries it
FALL_ASLEEP_MS = "1000"  # the longest a dispatcher waits for writers in flight before it may sleep

Connect = Callable[..., Any]


class Doorbell:
    """Rung when the outbox may hold something new: `rung` is set; the dispatcher clears it and looks."""

    def __init__(
        self, engine: AsyncEngine, *, rung: asyncio.Event | None = None, connect: Connect | None = None
    ) -> None:
        self.engine = engine
        self.rung = rung if rung is not None else asyncio.Event()
        self._connect = connect or asyncpg.connect
        self._connection: asyncpg.Connection | None = None
        self._asleep = False  # holds SLEEPING: writers in other processes ring
        self._tried = -RECONNECT_SECONDS
        self._sqlite = is_sqlite(engine)
        if self._sqlite:
            _bells_of(engine.sync_engine).add(self)

    @property
    def listening(self) -> bool:
        return self._connection is not None and not self._connection.is_closed()

    @property
    def hears(self) -> bool:
        """Whether writes made in other processes ring it now (PostgreSQL: listening, and asleep)."""
        return self._asleep and self.listening

    async def fall_asleep(self) -> bool:
        """Ask writers to ring (PostgreSQL, listening); whether it has just begun to: then look at the table
        once more, for what writers that found it awake committed meanwhile."""
        connection = self._connection
        if self._asleep or connection is None or not self.listening:
            return False
        try:
            await connection.execute(f"SELECT pg_advisory_lock({SLEEPING})", timeout=PING_TIMEOUT)
        except asyncpg.LockNotAvailableError:  # another dispatcher sleeps, or a long write is in flight
            return False
        except Exception as exc:
            log.warning("the outbox listener failed (%s); listening again", type(exc).__name__)
            await self._drop()
            return False
        self._asleep = True
        return True

    async def wake_up(self) -> None:
        """Stop asking writers to ring: awake, the dispatcher looks at the table by itself."""
        connection = self._connection
        if not self._asleep or connection is None:
            return
        self._asleep = False
        try:
            await connection.execute(f"SELECT pg_advisory_unlock({SLEEPING})", timeout=PING_TIMEOUT)
        except Exception as exc:  # the lock goes with the session
            log.warning("the outbox listener failed (%s); listening again", type(exc).__name__)
            await self._drop()

    def tries_again_in(self) -> float | None:
        """PostgreSQL, not listening: seconds until `listen` tries again (None: nothing to try)."""
        if self._sqlite or self.listening:
            return None
        return max(0.0, self._tried + RECONNECT_SECONDS - time.monotonic())

    def ring(self) -> None:
        self.rung.set()

    async def listen(self) -> None:
        """PostgreSQL: listen if not listening (at most once every RECONNECT_SECONDS while it fails)."""
        if self._sqlite or self.listening:
            return
        await self._drop()
        if time.monotonic() - self._tried < RECONNECT_SECONDS:
            return
        self._tried = time.monotonic()
        connection: asyncpg.Connection | None = None
        try:
            connection = await self._connect(
                asyncpg_dsn(self.engine.url),
                timeout=CONNECT_TIMEOUT,
                server_settings={"application_name": APPLICATION_NAME, "lock_timeout": FALL_ASLEEP_MS},
            )
            connection.add_termination_listener(self._lost)
            await connection.add_listener(CHANNEL, self._notified)
        except Exception as exc:  # the database is away: the dispatcher looks at the table meanwhile
            log.warning("cannot listen for new messages (%s); trying again", type(exc).__name__)
            if connection is not None:
                await _close(connection)
            return
        self._connection = connection
        self.ring()  # what was written while nobody listened

    async def check(self) -> None:
        """Ping the listening connection; drop it if it does not answer (a connection cut without a word)."""
        connection = self._connection
        if connection is None:
            return
        try:
            await connection.fetchval("SELECT 1", timeout=PING_TIMEOUT)
        except Exception as exc:
            log.warning("the outbox listener stopped answering (%s); listening again", type(exc).__name__)
            await self._drop()

    async def close(self) -> None:
        await self._drop()
        if self._sqlite:
            _bells_of(self.engine.sync_engine).discard(self)

    async def _drop(self) -> None:
        self._asleep = False
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.remove_termination_listener(self._lost)  # closed on purpose: not lost
            await _close(connection)

    def _notified(self, _connection: object, _pid: int, _channel: str, _payload: str) -> None:
        self.rung.set()

    def _lost(self, _connection: object) -> None:
        log.warning("the outbox listener lost its database connection; listening again")
        self.rung.set()  # the dispatcher wakes, finds it gone, and listens again


async def _close(connection: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(connection.close(), CLOSE_TIMEOUT)
    except Exception:
        connection.terminate()


def asyncpg_dsn(url: URL) -> str:
    """The engine's URL as asyncpg takes it (SQLAlchemy's `ssl` option is asyncpg's `sslmode`)."""
    query = dict(url.query)
    ssl = query.pop("ssl", None)
    if ssl is not None:
        query["sslmode"] = ssl
    return url.set(drivername="postgresql", query=query).render_as_string(hide_password=False)


# --- SQLite: the bell rung in this process ------------------------------------------------------------------

_bells: weakref.WeakKeyDictionary[Engine, weakref.WeakSet[Doorbell]] = weakref.WeakKeyDictionary()


def _bells_of(engine: Engine) -> weakref.WeakSet[Doorbell]:
    """The bells on this engine; the first one asked for sets up the engine's events."""
    bells = _bells.get(engine)
    if bells is None:
        bells = _bells[engine] = weakref.WeakSet()
        sa.event.listen(engine, "after_cursor_execute", _written)
        sa.event.listen(engine, "commit", _committed)
        sa.event.listen(engine, "rollback", _rolled_back)
    return bells


def _written(
    connection: sa.Connection, _cursor: Any, statement: str, _parameters: Any, context: Any, _many: bool
) -> None:
    if context is None or not (context.isinsert or context.isupdate):
        return
    compiled = getattr(context.compiled, "statement", None)
    table = getattr(compiled, "table", None)
    if getattr(table, "name", None) != "outbox":
        return
    # As the PostgreSQL trigger: rows written, or when one leaves set (claims and results set neither).
    if context.isinsert or "next_attempt_at" in statement.split(" WHERE ", 1)[0]:
        connection.info[_TOUCHED] = True


def _committed(connection: sa.Connection) -> None:
    if connection.info.pop(_TOUCHED, False):
        for bell in list(_bells.get(connection.engine, ())):
            bell.ring()


def _rolled_back(connection: sa.Connection) -> None:
    connection.info.pop(_TOUCHED, None)
