"""Database migrations (Alembic), run as a step before serving: `hamroh db upgrade`."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from bot.config import ROOT


def alembic_config(database_url: str) -> Config:
    """An Alembic configuration for this database, without an alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database to `revision` (head by default)."""
    command.upgrade(alembic_config(database_url), revision)
