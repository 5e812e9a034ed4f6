"""One active sender per channel credential, so a provider's rate limit holds across processes.

On PostgreSQL: an advisory lock held on a dedicated connection; if that connection drops, PostgreSQL
releases the lock and this process stops sending on that channel. On SQLite: an exclusive lock on a file
beside the database (one dispatcher per database file).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.store.db import is_sqlite

log = logging.getLogger(__name__)


class SenderLock(Protocol):
    """Held while this process may send on one credential."""

    async def acquire(self) -> bool:
        """Try to become the active sender; True when this process is (or still is) the one."""
        ...

    async def release(self) -> None:
        """Stop being the active sender."""
        ...


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for an advisory lock."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)


@dataclass
class AdvisoryLock:
    """A PostgreSQL session-level advisory lock on a connection of its own."""

    engine: AsyncEngine
    name: str
    _connection: AsyncConnection | None = field(default=None, init=False)

    async def acquire(self) -> bool:
        if self._connection is not None:
            try:  # still ours only while the connection that holds it lives
                await self._connection.execute(sa.text("SELECT 1"))
                await self._connection.commit()
                return True
            except Exception:  # the connection is gone, and the lock with it
                log.warning("lost the sender lock for %s: stopping sending on it", self.name.split(":")[0])
                await self._drop()
        connection = await self.engine.connect()
        try:
            result = await connection.execute(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": lock_key(self.name)}
            )
            held = bool(result.scalar())
            await connection.commit()  # never sit idle in a transaction while holding the lock
        except Exception:
            await connection.close()
            raise
        if not held:
            await connection.close()
            return False
        self._connection = connection
        return True

    async def release(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.execute(
                    sa.text("SELECT pg_advisory_unlock(:key)"), {"key": lock_key(self.name)}
                )
                await self._connection.commit()
            await self._drop()

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()


@dataclass
class FileLock:
    """An exclusive lock on a file: for SQLite, where one dispatcher serves one database file."""

    path: Path
    _fd: int | None = field(default=None, init=False)

    async def acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def sender_lock(engine: AsyncEngine, channel: str, credential: str) -> SenderLock:
    """The right kind of lock for this database."""
    name = f"{channel}:{credential}"
    if is_sqlite(engine):
        database = engine.url.database or ":memory:"
        folder = Path(database).parent if database != ":memory:" else Path(".")
        safe = hashlib.sha256(f"{database}:{name}".encode()).hexdigest()[:16]
        return FileLock(folder / f".dispatch-{safe}.lock")
    return AdvisoryLock(engine, name)
