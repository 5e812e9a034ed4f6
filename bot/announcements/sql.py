"""Core statements run in the session's transaction (the set-based work of announcements)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlmodel.ext.asyncio.session import AsyncSession


async def run(db: AsyncSession, statement: sa.Executable) -> CursorResult[Any]:
    """Execute a Core statement on the session's connection, inside its transaction."""
    connection = await db.connection()
    return await connection.execute(statement)


async def rows(db: AsyncSession, statement: sa.Executable) -> list[tuple[Any, ...]]:
    """The rows a Core SELECT returns, as plain tuples."""
    return [tuple(row) for row in (await run(db, statement)).all()]
