"""Database migrations (Alembic), run as a step before serving: `hamroh db upgrade`."""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from bot.store.db import create_engine


def alembic_config(database_url: str) -> Config:
    """An Alembic configuration for this database, without an alembic.ini.

    The scripts are the `migrations` package, found wherever it is installed (site-packages in the image,
    the source tree in an editable install).
    """
    config = Config()
    config.set_main_option("script_location", str(files("migrations")))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database to `revision` (head by default)."""
    command.upgrade(alembic_config(database_url), revision)


async def behind(database_url: str) -> bool:
    """Whether the database is behind the newest migration (or has none applied)."""
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            current = await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()
    return current != head
