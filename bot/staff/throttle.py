"""Login throttling: too many failures for a name or from an address refuse logins for a while.

The counters live in the database, so every worker process sees the same ones. Keys are keyed hashes:
the table never holds a typed name or a client address, and a plain hash of an IPv4 address would be
reversed by trying all four billion.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.store import LoginThrottle


@dataclass(frozen=True)
class Rules:
    """How many failures within `window` lock a key, and for how long."""

    name_failures: int = 5
    # Higher than for a name: several counsellors may share one office address, and the name's own
    # limit is what protects a single account. This one slows down trying many names from one place.
    address_failures: int = 20
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)


RULES = Rules()


@dataclass(frozen=True)
class Keys:
    """The throttle keys of one login attempt."""

    name: str
    address: str

    def all(self) -> tuple[str, str]:
        """Both keys."""
        return (self.name, self.address)


def keys_for(keyed_hash: Callable[[str], str], *, name: str, address: str) -> Keys:
    """The keys of an attempt: keyed hashes (e.g. the vault's fingerprint) of the name and the address."""
    return Keys(name=keyed_hash(f"login-name:{name}"), address=keyed_hash(f"login-address:{address}"))


async def locked_until(db: AsyncSession, *, keys: Iterable[str], now: datetime) -> datetime | None:
    """Until when logins with any of these keys are refused, or None if they are not."""
    query = select(sa.func.max(LoginThrottle.locked_until)).where(
        col(LoginThrottle.key).in_(list(keys)), col(LoginThrottle.locked_until) > now
    )
    until: datetime | None = (await db.exec(query)).one()
    return until


async def record_failure(db: AsyncSession, *, keys: Keys, now: datetime, rules: Rules = RULES) -> None:
    """Count a failed login against the name and the address; lock either once it reaches its limit."""
    await _count(db, key=keys.name, limit=rules.name_failures, now=now, rules=rules)
    await _count(db, key=keys.address, limit=rules.address_failures, now=now, rules=rules)
    # Rows whose window and lock are both over say nothing any more; without this the table only grows.
    stale = now - max(rules.window, rules.lockout)
    await db.exec(
        sa.delete(LoginThrottle).where(
            col(LoginThrottle.window_start) < stale,
            sa.or_(col(LoginThrottle.locked_until).is_(None), col(LoginThrottle.locked_until) < now),
        )
    )


async def clear(db: AsyncSession, *, key: str) -> None:
    """Forget a key's failures (after a successful login, for its name)."""
    await db.exec(sa.delete(LoginThrottle).where(col(LoginThrottle.key) == key))


async def _count(db: AsyncSession, *, key: str, limit: int, now: datetime, rules: Rules) -> None:
    # Create the row if it is missing without failing when another worker does the same, then lock it,
    # so that two failures at once in two processes both count.
    await db.exec(_insert_if_missing(db, key, now))
    query = (
        select(LoginThrottle)
        .where(LoginThrottle.key == key)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    row = (await db.exec(query)).one()
    if row.window_start <= now - rules.window:
        row.failures, row.window_start = 0, now
    row.failures += 1
    if row.failures >= limit:
        row.locked_until = now + rules.lockout
        row.failures, row.window_start = 0, now  # after the lock, a fresh start
    db.add(row)
    await db.flush()


def _insert_if_missing(db: AsyncSession, key: str, now: datetime) -> sa.Insert:
    values = {"key": key, "failures": 0, "window_start": now, "locked_until": None}
    table = LoginThrottle.__table__  # type: ignore[attr-defined]
    if db.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table).values(values).on_conflict_do_nothing(index_elements=["key"])
    return sqlite.insert(table).values(values).on_conflict_do_nothing(index_elements=["key"])
