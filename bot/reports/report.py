"""The reports as published: each table counted, then released with its small cells hidden.

The page, the CSV files and the JSON API all come through `publish`, so they always show the same numbers
and hide the same cells.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.reports import aggregate, rollup
from bot.reports.rollup import MONTH, Period
from bot.reports.suppress import Released, Table, release
from bot.store.db import transaction

# name -> (title, what is counted). "requests" is counted by the keys asked for.
TABLES: dict[str, tuple[str, str]] = {
    "requests": ("Requests", "requests"),
    "women": ("Women who asked, per month", "women"),
    "escalations": ("Escalations opened, by priority", "escalations"),
    "outcomes": ("Escalations closed, by priority and outcome", "escalations"),
    "claims": ("Time to claim an escalation, by priority", "claims"),
    "announcements": ("Announcement messages, per month", "messages"),
    "enrolments": ("Enrolments, per month", "enrolments"),
}
PAGE_REQUESTS = (("topic",), ("month",), ("region",), ("channel",), ("lang",))  # the page's request tables
KEY_TITLES = {
    "topic": "topic",
    "month": "month",
    "region": "region",
    "channel": "channel",
    "lang": "language",
    "priority": "priority",
    "outcome": "outcome",
    "status": "status",
}


@dataclass(frozen=True)
class Published:
    """One released table: its name, title, what it counts, and (for claims) figures beside each count,
    hidden where the count is."""

    name: str
    title: str
    measure: str
    table: Released
    extra: tuple[tuple[str, Mapping[str, int | None]], ...] = field(default=())

    @property
    def slug(self) -> str:
        """A name unique on the page (requests by topic: requests-topic)."""
        return "-".join((self.name, *self.table.keys)) if self.name == "requests" else self.name

    @property
    def by(self) -> str:
        """The keys, comma-separated (the `by` of its address)."""
        return ",".join(self.table.keys)


async def publish(
    db: AsyncSession,
    name: str,
    *,
    regions: Mapping[str, str],
    period: Period,
    now: datetime,
    threshold: int,
    by: Sequence[str] = ("topic",),
) -> Published:
    """One table, counted and released. KeyError for an unknown name; ValueError for a bad `by`;
    suppress.TooFine for a table too fine to publish."""
    times = None
    match name:
        case "requests":
            table = await aggregate.requests(db, regions, by=by, period=period, now=now)
        case "women":
            table = await aggregate.women(db, period=period, now=now)
        case "escalations":
            table = await aggregate.escalations_opened(db, period=period)
        case "outcomes":
            table = await aggregate.escalations_closed(db, period=period)
        case "claims":
            times = await aggregate.claim_times(db, period=period)
            table = times.claims
        case "announcements":
            table = await aggregate.announcements(db, period=period)
        case "enrolments":
            table = await aggregate.enrolments(db, period=period)
        case _:
            raise KeyError(name)
    return released(name, table, threshold, times)


def released(name: str, table: Table, threshold: int, times: aggregate.ClaimTimes | None = None) -> Published:
    """A counted table, released with its small cells hidden, named and titled."""
    title, measure = TABLES[name]
    if name == "requests":
        title = "Requests by " + ", ".join(KEY_TITLES[k] for k in table.keys)
    extra: tuple[tuple[str, Mapping[str, int | None]], ...] = ()
    shown_table = release(table, threshold)
    if name == "women":
        # Pseudonyms change each month: the sum of months is not a number of women, so it is not shown.
        shown_table = replace(shown_table, total=None, has_totals=False)
    if times is not None:
        # A median of a few waits is a few women's waits: shown only beside a count that is shown.
        def shown(figures: Mapping[str, int]) -> dict[str, int | None]:
            return {p: figures[p] if shown_table.cells[(p,)] is not None else None for p in table.axes[0]}

        extra = (("median_seconds", shown(times.median)), ("p90_seconds", shown(times.p90)))
    return Published(name=name, title=title, measure=measure, table=shown_table, extra=extra)


OTHERS = ("women", "escalations", "outcomes", "claims", "announcements", "enrolments")  # after requests


async def page(
    engine: AsyncEngine, *, regions: Mapping[str, str], period: Period, now: datetime, threshold: int
) -> list[Published]:
    """Every table of the report page, in the order shown.

    The open month's requests, its women and the other tables are read at once, each in a transaction of
    its own: on PostgreSQL they run side by side (on SQLite, one after the other, as ever). The tables may
    then see a moment apart, which a monthly report does not mind.
    """
    keys = [by[0] for by in PAGE_REQUESTS]

    async def requests(db: AsyncSession) -> list[Published]:
        each = await aggregate.requests_by_each(db, regions, keys=keys, period=period, now=now)
        return [released("requests", each[k], threshold) for k in keys]

    async def others(db: AsyncSession, names: Sequence[str]) -> list[Published]:
        return [
            await publish(db, name, regions=regions, period=period, now=now, threshold=threshold)
            for name in names
        ]

    async def apart(read: Callable[[AsyncSession], Awaitable[list[Published]]]) -> list[Published]:
        async with transaction(engine) as db:
            return await read(db)

    parts = await asyncio.gather(
        apart(requests), apart(lambda db: others(db, OTHERS[:1])), apart(lambda db: others(db, OTHERS[1:]))
    )
    return [published for part in parts for published in part]


def parse_by(text: str | None) -> tuple[str, ...]:
    """The keys of `by=topic,month` in the order given; ValueError names an unknown or repeated key."""
    keys = tuple(k.strip() for k in (text or "topic").split(",") if k.strip())
    unknown = [k for k in keys if k not in aggregate.KEYS]
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}: by is one or more of {', '.join(aggregate.KEYS)}")
    if not keys or len(set(keys)) != len(keys):
        raise ValueError(f"by is one or more of {', '.join(aggregate.KEYS)}, each once")
    return keys


def parse_period(first: str | None, last: str | None) -> Period:
    """`from` and `to` months (YYYY-MM, both included, either may be absent); ValueError says why not."""
    for name, month in (("from", first), ("to", last)):
        if month is not None and not MONTH.match(month):
            raise ValueError(f"{name} is a month written YYYY-MM, e.g. 2026-11")
    if first and last and first > last:
        raise ValueError("from comes after to")
    return Period(first=first or None, last=last or None)


async def load(
    engine: AsyncEngine,
    names: Sequence[str],
    *,
    regions: Mapping[str, str],
    period: Period,
    now: datetime,
    threshold: int,
    by: Sequence[str] = ("topic",),
) -> list[Published]:
    """The tables named ("page" for all of the page's), after bringing the monthly rollup up to date.

    The rollup is written in transactions of its own, before the tables are read.
    """
    await rollup.refresh(engine, now=now)
    if list(names) == ["page"]:
        return await page(engine, regions=regions, period=period, now=now, threshold=threshold)
    async with transaction(engine) as db:
        return [
            await publish(db, name, regions=regions, period=period, now=now, threshold=threshold, by=by)
            for name in names
        ]
