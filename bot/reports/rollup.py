"""Months in Asia/Dushanbe, and the monthly rollup that keeps the report page fast.

Why a rollup: a report over a year of the request log groups every row of it (a million rows take most of a
second on PostgreSQL for each table, and the page shows several). A month's rows never change once the month
has closed (a row is written for the hour in which she asked), so each closed month is counted once into
`request_counts` (month x topic x channel x language x district: the API's tables of several keys),
`request_marginals` (month x one key x its value: a few hundred rows a month, all that the page's one-key
tables read) and `request_months` (its requests and women); the open month is read live through the
index on `hour`. The rollup is brought up to date by the page itself before it reads (`refresh`): nothing
to do costs two small queries; the first page of a month counts the month that just closed, once, with one
INSERT ... SELECT per month. Erasing her never touches the request log (it has no link to her), so the
rollup cannot keep anything that erasure removes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.store import RequestCount, RequestLogEntry, RequestMarginal, RequestMonth
from bot.store.db import transaction

log = logging.getLogger(__name__)

# Tajikistan has kept UTC+5 all year since 1991: a fixed offset is exact, and SQLite has no time zones.
DUSHANBE = timedelta(hours=5)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # before any row: the lower end of "from the beginning"
MARGINAL_KEYS = ("topic", "channel", "lang", "district")  # request_marginals: one key at a time
MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def month_of(moment: datetime) -> str:
    """The month ("2026-11") of a UTC time, as people in Dushanbe count it."""
    return (moment.astimezone(UTC) + DUSHANBE).strftime("%Y-%m")


def month_start(month: str) -> datetime:
    """The UTC time at which a Dushanbe month begins."""
    found = MONTH.match(month)
    if found is None:
        raise ValueError(f"not a month: {month!r} (YYYY-MM)")
    return datetime(int(found[1]), int(found[2]), 1, tzinfo=UTC) - DUSHANBE


def next_month(month: str) -> str:
    """The month after this one."""
    year, number = int(month[:4]), int(month[5:7])
    return f"{year + number // 12:04d}-{number % 12 + 1:02d}"


async def rows(db: AsyncSession, query: Any) -> list[tuple[Any, ...]]:
    """The rows of a Core query, as tuples (typed columns chosen at run time do not fit `db.exec`)."""
    connection = await db.connection()
    return [tuple(row) for row in (await connection.execute(query)).all()]


def month_sql(column: Any, dialect: str) -> Any:
    """An SQL expression of the Dushanbe month ("YYYY-MM") of a UTC time column."""
    if dialect == "postgresql":
        return sa.func.to_char(sa.func.timezone("Asia/Dushanbe", column), "YYYY-MM")
    return sa.func.strftime("%Y-%m", column, "+5 hours")


@dataclass(frozen=True)
class Period:
    """Whole months, first to last included; None: from the beginning, or up to now."""

    first: str | None = None
    last: str | None = None

    def contains(self, month: str) -> bool:
        """Whether the month is in the period."""
        return (self.first is None or month >= self.first) and (self.last is None or month <= self.last)

    def where(self, column: Any) -> list[Any]:
        """Conditions on a UTC time column for the period (usable with an index)."""
        out = []
        if self.first is not None:
            out.append(column >= month_start(self.first))
        if self.last is not None:
            out.append(column < month_start(next_month(self.last)))
        return out


async def refresh(engine: AsyncEngine, *, now: datetime) -> list[str]:
    """Roll up every closed month not rolled up yet; the months rolled up now, oldest first.

    Two callers at once are harmless: the second one's insert meets the first one's primary key and is
    dropped, its month already counted.
    """
    async with transaction(engine) as db:
        todo = await _months_to_roll(db, now)
    done = []
    for month in todo:
        try:
            async with transaction(engine) as db:
                await _roll(db, month, now)
            done.append(month)
        except IntegrityError:
            log.info("the month %s was rolled up by another process", month)
    return done


async def _months_to_roll(db: AsyncSession, now: datetime) -> list[str]:
    oldest = (await db.exec(select(sa.func.min(RequestLogEntry.hour)))).one()
    if oldest is None:
        return []
    current = month_of(now)
    rolled = set((await db.exec(select(RequestMonth.month).where(RequestMonth.month < current))).all())
    months, month = [], month_of(oldest)
    while month < current:
        if month not in rolled:
            months.append(month)
        month = next_month(month)
    return months


async def _roll(db: AsyncSession, month: str, now: datetime) -> None:
    start, end = month_start(month), month_start(next_month(month))
    within = [col(RequestLogEntry.hour) >= start, col(RequestLogEntry.hour) < end]
    topic, channel = col(RequestLogEntry.topic), col(RequestLogEntry.channel)
    lang = sa.func.coalesce(col(RequestLogEntry.lang), "")
    district = sa.func.coalesce(col(RequestLogEntry.district), "")
    counted = (
        sa.select(sa.literal(month), topic, channel, lang, district, sa.func.count())
        .where(*within)
        .group_by(topic, channel, lang, district)
    )
    columns = ["month", "topic", "channel", "lang", "district", "requests"]
    await db.exec(sa.insert(RequestCount).from_select(columns, counted))
    for key in MARGINAL_KEYS:
        value = col(getattr(RequestCount, key))
        per_value = (
            sa.select(sa.literal(month), sa.literal(key), value, sa.func.sum(col(RequestCount.requests)))
            .where(col(RequestCount.month) == month)
            .group_by(value)
        )
        await db.exec(
            sa.insert(RequestMarginal).from_select(["month", "key", "value", "requests"], per_value)
        )
    pseudonyms = sa.func.count(sa.distinct(col(RequestLogEntry.pseudonym)))
    (totals,) = await rows(db, sa.select(sa.func.count(), pseudonyms).where(*within))
    db.add(RequestMonth(month=month, requests=totals[0], women=totals[1], rolled_at=now))
    await db.flush()


async def rolled_months(db: AsyncSession, period: Period, now: datetime) -> dict[str, tuple[int, int]]:
    """Closed months of the period already rolled up: month -> (requests, women)."""
    query = select(RequestMonth).where(RequestMonth.month < month_of(now))
    if period.first is not None:
        query = query.where(RequestMonth.month >= period.first)
    if period.last is not None:
        query = query.where(RequestMonth.month <= period.last)
    return {m.month: (m.requests, m.women) for m in (await db.exec(query)).all()}


async def live_months(db: AsyncSession, period: Period, rolled: Iterable[str], now: datetime) -> list[str]:
    """The months of the period read from the log itself: the open month, and any not rolled up yet
    (from the oldest row's month on)."""
    oldest = (await db.exec(select(sa.func.min(RequestLogEntry.hour)))).one()
    if oldest is None:
        return []
    month = max(month_of(oldest), period.first or "")
    last = min(period.last, month_of(now)) if period.last is not None else month_of(now)
    done, out = set(rolled), []
    while month <= last:
        if month not in done:
            out.append(month)
        month = next_month(month)
    return out


def in_month(column: Any, month: str) -> list[Any]:
    """Conditions: the UTC time column falls in the Dushanbe month (usable with an index)."""
    return [column >= month_start(month), column < month_start(next_month(month))]


__all__ = [
    "DUSHANBE",
    "Period",
    "in_month",
    "live_months",
    "month_of",
    "month_sql",
    "month_start",
    "next_month",
    "refresh",
    "rolled_months",
]
