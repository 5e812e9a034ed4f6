"""Database connections: plain URLs in, the right async driver out; SQLite made safe for a busy bot."""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import await_
from sqlmodel.ext.asyncio.session import AsyncSession

SQLITE_BUSY_TIMEOUT_MS = 10_000
POOL_RECYCLE_SECONDS = 300  # a PostgreSQL connection is replaced after 5 minutes
# On a SQLite connection's info: this transaction wrote to the outbox (its commit wakes this process's
# dispatcher: bot.outbound.wakeup).
OUTBOX_TOUCHED = "hamroh_outbox_touched"
# On a SQLite connection's info: its transaction has committed and nothing of it is left on aiosqlite's
# thread, so the pool need not roll it back when it is returned (set by `committed`).
_COMMITTED = "hamroh_committed"


def async_url(url: str) -> URL:
    """`sqlite:///path` -> aiosqlite, `postgresql://...?sslmode=` -> asyncpg with its `ssl` option."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        query = dict(parsed.query)
        sslmode = query.pop("sslmode", None)
        if sslmode is not None:
            query["ssl"] = sslmode
        return parsed.set(drivername="postgresql+asyncpg", query=query)
    raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


def is_sqlite(engine: AsyncEngine | AsyncConnection) -> bool:
    """Whether this is the embedded database."""
    return engine.dialect.name == "sqlite"


def create_engine(url: str, *, command_timeout: float | None = None, **kwargs: Any) -> AsyncEngine:
    """An async engine for a plain database URL.

    With `command_timeout` (seconds), no database command waits longer: a database that hangs rather than
    refuses then fails the command, and its transaction rolls back, instead of holding a connection (and
    the webhook waiting on it) for as long as TCP takes to notice. On PostgreSQL it bounds connecting,
    each command as the driver waits for it, and each statement on the server (`statement_timeout`, which
    also ends a statement stuck behind another session's lock); on SQLite it is the busy timeout. Serving
    passes it; migrations and one-off commands do not.
    """
    target = async_url(url)
    if target.get_backend_name() == "sqlite":
        if target.database and target.database != ":memory:":
            Path(target.database).parent.mkdir(parents=True, exist_ok=True)
        busy_ms = SQLITE_BUSY_TIMEOUT_MS if command_timeout is None else round(command_timeout * 1000)
        kwargs.setdefault("pool_reset_on_return", None)  # _make_sqlite_safe's reset rolls back if need be
        engine = create_async_engine(target, connect_args={"timeout": busy_ms / 1000}, **kwargs)
        _make_sqlite_safe(engine, busy_ms)
        return engine
    # Room for the turns in flight at once: a connection opened past the pool is closed when returned, and
    # opening one costs both processes far more than a turn does.
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 10)
    # No ping before every checkout (a round trip a turn): a connection the server dropped fails its turn,
    # which answers 503 and is delivered again, and SQLAlchemy then discards every connection of the pool
    # older than the failure. Recycling bounds how long an idle connection can have been silently cut.
    kwargs.setdefault("pool_pre_ping", False)
    kwargs.setdefault("pool_recycle", POOL_RECYCLE_SECONDS)
    if command_timeout is not None:
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("timeout", command_timeout)  # connecting (asyncpg's default is 60 s)
        connect_args.setdefault("command_timeout", command_timeout)
        server_settings = {"statement_timeout": str(round(command_timeout * 1000))}
        connect_args["server_settings"] = server_settings | connect_args.get("server_settings", {})
        kwargs["connect_args"] = connect_args
        kwargs.setdefault("pool_timeout", command_timeout)  # waiting for a free connection
    return create_async_engine(target, **kwargs)


def _make_sqlite_safe(engine: AsyncEngine, busy_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> None:
    """WAL, a busy timeout, foreign keys, synchronous=FULL, and write transactions begun IMMEDIATE.

    Without IMMEDIATE, two turns that both read then write deadlock on the lock upgrade and one fails.
    In WAL mode, NORMAL may lose the last transactions at a power cut, though their webhooks were answered
    200 and Twilio or Telegram will not send them again; FULL syncs the log at every commit, which is a
    few milliseconds a turn on a disk that keeps its promises.

    Each crossing to aiosqlite's thread costs a turn more CPU than its statements do, so a turn makes two
    (its COMMIT, and BEGIN IMMEDIATE when another process writes) where SQLAlchemy would make six. What
    may wait stays on that thread, so the event loop never sleeps: a busy database, and a commit's sync.
    """

    @sa.event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @sa.event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        aiosqlite_connection = connection.connection.driver_connection
        if _begin_at_once(aiosqlite_connection._conn, busy_ms):
            return
        # Another process writes: wait for it on aiosqlite's thread, in one crossing (SQLAlchemy's own
        # statement takes three), and fail as SQLAlchemy would say it (a locked database is an
        # OperationalError: retried).
        try:
            await_(aiosqlite_connection.execute("BEGIN IMMEDIATE"))
        except sqlite3.Error as exc:
            raise sa.exc.DBAPIError.instance("BEGIN IMMEDIATE", None, exc, sqlite3.Error) from exc

    @sa.event.listens_for(engine.sync_engine, "reset")
    def _on_reset(dbapi_connection: Any, record: Any, state: Any) -> None:
        # SQLAlchemy rolls a connection back when it is returned, even after its own commit: a crossing to
        # aiosqlite's thread for nothing once `committed` has said so. Anything else is rolled back, after
        # whatever a cancelled task left on that thread, before another task may have the connection. One
        # dropped outside the event loop is closed instead, which rolls back.
        said = record is not None and record.info.pop(_COMMITTED, False)
        if state.asyncio_safe and not (said and not record.driver_connection.in_transaction):
            dbapi_connection.rollback()


def _begin_at_once(connection: sqlite3.Connection, busy_ms: int) -> bool:
    """BEGIN IMMEDIATE on the calling thread if no other connection writes (it then takes microseconds);
    False, with nothing begun, if one does. The busy timeout is 0 meanwhile, so it never waits here."""
    connection.execute("PRAGMA busy_timeout=0")
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        return False
    finally:
        connection.execute(f"PRAGMA busy_timeout={busy_ms}")
    return True


def committed(connection: AsyncConnection) -> None:
    """Say that the connection's transaction has committed (its commit was awaited to the end), so returning
    it to the pool needs no rollback."""
    if is_sqlite(connection):
        connection.info[_COMMITTED] = True


_sqlite_writers: weakref.WeakKeyDictionary[Engine, asyncio.Lock] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def one_writer(engine: AsyncEngine) -> AsyncIterator[None]:
    """On SQLite, wait for the writers before this one; elsewhere, nothing.

    SQLite has one writer at a time; queueing writers here, in order, is far cheaper than letting them
    spin on SQLite's busy timeout, which sleeps and retries (seconds at the tail under load).
    """
    if not is_sqlite(engine):
        yield
        return
    async with _sqlite_writers.setdefault(engine.sync_engine, asyncio.Lock()):
        yield


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """One unit of work: committed when the block ends, rolled back entirely if it raises."""
    async with one_writer(engine), AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        yield session
