"""Database URLs as an IT person or a managed service gives them."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bot.store.db import async_url, create_engine


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///var/hamroh.db", "sqlite+aiosqlite:///var/hamroh.db"),
        ("sqlite:////abs/hamroh.db", "sqlite+aiosqlite:////abs/hamroh.db"),
        ("postgresql://hamroh@db/hamroh", "postgresql+asyncpg://hamroh@db/hamroh"),
        ("postgres://u:p@h:5433/d?sslmode=require", "postgresql+asyncpg://u:p@h:5433/d?ssl=require"),
        (
            "postgresql://u@h/d?sslmode=disable&application_name=x",
            "postgresql+asyncpg://u@h/d?application_name=x&ssl=disable",
        ),
    ],
)
def test_plain_urls_get_the_async_driver(given: str, expected: str) -> None:
    assert async_url(given).render_as_string(hide_password=False) == expected


def test_an_unsupported_database_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="unsupported database 'mysql'"):
        async_url("mysql://root@localhost/test")


@pytest.mark.postgres
async def test_a_postgres_url_with_sslmode_connects(postgres_url: str) -> None:
    import sqlalchemy as sa

    from bot.store.db import create_engine

    engine = create_engine(f"{postgres_url}?sslmode=disable")
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(sa.text("SELECT 1"))).scalar() == 1
    finally:
        await engine.dispose()


async def test_a_sqlite_database_another_writer_holds_is_an_operational_error_once_the_wait_is_over(
    sqlite_url: str,
) -> None:
    """Beginning a write waits for the writer before it, then fails as SQLAlchemy says it (the dispatcher
    retries an OperationalError; a bare sqlite3 error would be taken for a bad query)."""
    engine = create_engine(sqlite_url, command_timeout=0.1)
    other = sqlite3.connect(make_url(sqlite_url).database or "", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(sa.exc.OperationalError, match="locked"):
            async with engine.begin():
                pass
        other.execute("ROLLBACK")
        async with engine.begin() as connection:  # free again: the same engine writes
            await connection.execute(sa.text("CREATE TABLE written (n INTEGER)"))
    finally:
        other.close()
        await engine.dispose()


async def test_a_sqlite_write_waits_for_another_process_writer_while_the_event_loop_runs_on(
    sqlite_url: str,
) -> None:
    """The writer before it lets go from this event loop, which goes on ticking meanwhile: had beginning
    waited on the loop's own thread, the loop would stand still for the whole wait (5 s)."""
    engine = create_engine(sqlite_url, command_timeout=5)
    other = sqlite3.connect(make_url(sqlite_url).database or "", isolation_level=None)
    loop = asyncio.get_running_loop()
    ticks: list[float] = []

    async def tick() -> None:
        while True:
            ticks.append(loop.time())
            await asyncio.sleep(0.01)

    ticking = asyncio.create_task(tick())
    try:
        other.execute("BEGIN IMMEDIATE")
        loop.call_later(0.3, other.execute, "ROLLBACK")
        async with engine.begin() as connection:
            await connection.execute(sa.text("CREATE TABLE written (n INTEGER)"))
        assert not other.in_transaction
        assert max(later - earlier for earlier, later in itertools.pairwise(ticks)) < 1
    finally:
        ticking.cancel()
        other.close()
        await engine.dispose()


async def test_a_sqlite_connection_returned_inside_its_transaction_is_rolled_back_before_it_is_reused(
    sqlite_url: str,
) -> None:
    """A transaction begun where SQLAlchemy cannot see it still ends when its connection goes back to the
    pool: the write lock is free again, and the next user of the connection begins afresh."""
    engine = create_engine(sqlite_url, command_timeout=0.1)
    try:
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            await raw.driver_connection.execute("BEGIN IMMEDIATE")
        other = sqlite3.connect(make_url(sqlite_url).database or "", isolation_level=None, timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")  # free: the pool rolled it back
            other.execute("ROLLBACK")
        finally:
            other.close()
        async with engine.begin() as connection:
            await connection.execute(sa.text("CREATE TABLE written (n INTEGER)"))
    finally:
        await engine.dispose()
