"""Migrations: an empty database upgraded to head matches the models exactly, on both databases."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from bot.store import METADATA
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
