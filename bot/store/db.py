"""Database connections: plain URLs in, the right async driver out; SQLite made safe for a busy bot."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

SQLITE_BUSY_TIMEOUT_MS = 10_000


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


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine for a plain database URL."""
    target = async_url(url)
    if target.get_backend_name() == "sqlite":
        if target.database and target.database != ":memory:":
            Path(target.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            target, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
        )
        _make_sqlite_safe(engine)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(target, **kwargs)


def _make_sqlite_safe(engine: AsyncEngine) -> None:
    """WAL, a busy timeout, foreign keys, and write transactions begun IMMEDIATE.

    Without IMMEDIATE, two turns that both read then write deadlock on the lock upgrade and one fails.
    """

    @sa.event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @sa.event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


_sqlite_writers: weakref.WeakKeyDictionary[Engine, asyncio.Lock] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """One unit of work: committed when the block ends, rolled back entirely if it raises.

    SQLite has one writer at a time; queueing writers here, in order, is far cheaper than letting them
    spin on SQLite's busy timeout, which sleeps and retries (seconds at the tail under load).
    """
    if is_sqlite(engine):
        lock = _sqlite_writers.setdefault(engine.sync_engine, asyncio.Lock())
        async with lock, AsyncSession(engine, expire_on_commit=False) as session, session.begin():
            yield session
        return
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        yield session
