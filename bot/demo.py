"""The development demo: clearly marked example courses, so the training menu has something to list.

Only `make run` (development) seeds these; never a migration, never production.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.store import CourseRow
from bot.store.db import transaction

EXAMPLE_COURSES = (
    # (tg, ru, en, district or None for everyone, start)
    ("НАМУНА: Дӯзандагӣ", "ПРИМЕР: Швейное дело", "EXAMPLE: Sewing", "bokhtar", date(2027, 1, 11)),
    (
        "НАМУНА: Саводнокии молиявӣ",
        "ПРИМЕР: Финансовая грамотность",
        "EXAMPLE: Financial literacy",
        None,
        date(2027, 1, 18),
    ),
    (
        "НАМУНА: Нонпазӣ ва қаннодӣ",
        "ПРИМЕР: Выпечка и кондитерское дело",
        "EXAMPLE: Baking",
        "khujand",
        date(2027, 2, 1),
    ),
)


async def seed_example_courses(engine: AsyncEngine, now: datetime) -> int:
    """Add the example courses unless they are there already; how many were added."""
    async with transaction(engine) as db:
        if (await db.exec(select(CourseRow.id).where(CourseRow.example))).first() is not None:
            return 0
        for tg, ru, en, district, starts in EXAMPLE_COURSES:
            db.add(
                CourseRow(
                    title_tg=tg,
                    title_ru=ru,
                    title_en=en,
                    district=district,
                    starts_on=starts,
                    example=True,
                    created_at=now,
                )
            )
    return len(EXAMPLE_COURSES)
