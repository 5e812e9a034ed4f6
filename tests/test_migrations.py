"""Migrations: an empty database upgraded to head matches the models exactly, on both databases."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from bot.store import METADATA, NEWS_TOPICS, migrate
from bot.store.db import create_engine


def differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, METADATA))


async def test_head_matches_the_models(database_url: str) -> None:
    engine = create_engine(database_url)  # the fixture already upgraded it from empty to head
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        await engine.dispose()


def test_women_subscribed_before_topics_keep_news_of_every_topic(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    url = f"sqlite+aiosqlite:///{path}"
    migrate.upgrade(url, "0004")
    with sqlite3.connect(path) as db:
        for n, subscribed in ((1, True), (2, False)):
            db.execute(
                "INSERT INTO contacts (id, channel, fingerprint, address, script, subscribed, opted_out,"
                " reachable, may_have_case, pseudonym, pseudonym_month, created_at)"
                " VALUES (?, 'sms', ?, x'00', 'cyrillic', ?, 0, 1, 0, 'p', '2026-11', '2026-11-30 10:00:00')",
                (n, f"f{n}", subscribed),
            )
    migrate.upgrade(url)
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT contact_id, topic FROM subscriptions ORDER BY topic").fetchall()
    assert rows == [(1, topic) for topic in sorted(NEWS_TOPICS)]
