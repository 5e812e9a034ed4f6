"""Counts for the reports, from the anonymised request log (through its monthly rollup), case events,
announcement outcomes and enrolments. Only counts leave here: never a pseudonym, a contact or a case.

Every function returns a `Table` (bot.reports.suppress) of true counts; nothing is published before
`release` has hidden the small ones.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.reports.rollup import Period, in_ranges, live_ranges, month_sql, rolled_months, rows
from bot.reports.suppress import Key, Table
from bot.store import AnnouncementRecipient, CaseEvent, Enrolment, RequestCount, RequestLogEntry

KEYS = ("topic", "month", "region", "channel", "lang")  # what requests can be counted by
UNKNOWN = "unknown"  # her district or language was not known when she asked
ANNOUNCEMENT_OUTCOMES = ("sent", "delivered", "failed")  # sent: left, no delivery report (yet)
ENROLMENT_STATUSES = ("enrolled", "waiting", "cancelled")


def dialect(db: AsyncSession) -> str:
    """The database's dialect name ("postgresql", "sqlite")."""
    bind = db.bind
    assert bind is not None
    return str(bind.dialect.name)


async def requests(
    db: AsyncSession,
    regions: Mapping[str, str],
    *,
    by: Sequence[str],
    period: Period,
    now: datetime,
) -> Table:
    """Requests counted by the keys `by` (from KEYS, in that order), over the period's whole months.

    `regions` maps each district to its region (FlowSet.districts); an unknown or unnamed district is its
    own "unknown" row. Closed months come from the rollup, the others from the log itself.
    """
    unknown = [k for k in by if k not in KEYS]
    if unknown or not by or len(set(by)) != len(by):
        raise ValueError(f"count by one or more of {', '.join(KEYS)}, each once")
    rolled = await rolled_months(db, period, now)
    counts: dict[Key, int] = defaultdict(int)

    def add(rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            *values, n = row
            counts[tuple(_shown(k, v, regions) for k, v in zip(by, values, strict=True))] += int(n)

    if rolled:
        columns = [_rollup_column(k) for k in by]
        query = sa.select(*columns, sa.func.sum(RequestCount.requests)).where(
            col(RequestCount.month).in_(sorted(rolled))
        )
        add(await rows(db, query.group_by(*columns)))
    ranges = live_ranges(period, list(rolled), now)
    if ranges:
        columns = [_live_column(k, dialect(db)) for k in by]
        query = sa.select(*columns, sa.func.count()).where(in_ranges(RequestLogEntry.hour, ranges))
        add(await rows(db, query.group_by(*columns)))
    return _table(tuple(by), counts)


async def women(db: AsyncSession, *, period: Period, now: datetime) -> Table:
    """Women who asked anything, per month: distinct monthly pseudonyms (they cannot be linked across
    months, so a month's count is all that can be said)."""
    rolled = await rolled_months(db, period, now)
    counts: dict[Key, int] = {(m,): n for m, (_, n) in rolled.items() if n}
    ranges = live_ranges(period, list(rolled), now)
    if ranges:
        month = month_sql(RequestLogEntry.hour, dialect(db))
        query = (
            sa.select(month, sa.func.count(sa.distinct(col(RequestLogEntry.pseudonym))))
            .where(in_ranges(RequestLogEntry.hour, ranges))
            .group_by(month)
        )
        for m, n in await rows(db, query):
            counts[(m,)] = counts.get((m,), 0) + int(n)
    return _table(("month",), counts)


async def escalations_opened(db: AsyncSession, *, period: Period) -> Table:
    """Escalations opened, by priority."""
    query = (
        sa.select(col(CaseEvent.priority), sa.func.count())
        .where(col(CaseEvent.kind) == "opened", *period.where(CaseEvent.hour))
        .group_by(col(CaseEvent.priority))
    )
    return _table(("priority",), {(p,): int(n) for p, n in await rows(db, query)})


async def escalations_closed(db: AsyncSession, *, period: Period) -> Table:
    """Escalations closed, by priority and outcome."""
    outcome = sa.func.coalesce(col(CaseEvent.outcome), "none")
    query = (
        sa.select(col(CaseEvent.priority), outcome, sa.func.count())
        .where(col(CaseEvent.kind) == "closed", *period.where(CaseEvent.hour))
        .group_by(col(CaseEvent.priority), outcome)
    )
    return _table(("priority", "outcome"), {(p, o): int(n) for p, o, n in await rows(db, query)})


@dataclass(frozen=True)
class ClaimTimes:
    """How long women waited for a counsellor, by priority: the claims, and the median and 90th percentile
    of the seconds to claim (of the claimed events)."""

    claims: Table
    median: Mapping[str, int]
    p90: Mapping[str, int]


async def claim_times(db: AsyncSession, *, period: Period) -> ClaimTimes:
    """Seconds to claim, by priority (each claim of a case, a second claim after a transfer too)."""
    query = (
        select(CaseEvent.priority, CaseEvent.seconds_to_claim)
        .where(
            col(CaseEvent.kind) == "claimed",
            col(CaseEvent.seconds_to_claim).is_not(None),
            *period.where(CaseEvent.hour),
        )
        .order_by(CaseEvent.priority)
    )
    seconds: dict[str, list[int]] = defaultdict(list)
    for priority, waited in await rows(db, query):
        if waited is not None:
            seconds[priority].append(max(0, waited))
    claims = _table(("priority",), {(p,): len(s) for p, s in seconds.items()})
    return ClaimTimes(
        claims=claims,
        median={p: round(statistics.median(s)) for p, s in seconds.items()},
        p90={p: _nearest_rank(s, 0.9) for p, s in seconds.items()},
    )


def _nearest_rank(values: Sequence[int], share: float) -> int:
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 1))  # ceil(n * share), at least the first
    return ordered[int(rank) - 1]


async def announcements(db: AsyncSession, *, period: Period) -> Table:
    """Announcement messages per month (of their last outcome) that were sent, delivered or failed."""
    month = month_sql(AnnouncementRecipient.updated_at, dialect(db))
    query = (
        sa.select(month, col(AnnouncementRecipient.outcome), sa.func.count())
        .where(
            col(AnnouncementRecipient.outcome).in_(ANNOUNCEMENT_OUTCOMES),
            *period.where(AnnouncementRecipient.updated_at),
        )
        .group_by(month, col(AnnouncementRecipient.outcome))
    )
    found = {(m, o): int(n) for m, o, n in await rows(db, query)}
    return _table(("month", "outcome"), found, fixed={1: ANNOUNCEMENT_OUTCOMES})


async def enrolments(db: AsyncSession, *, period: Period) -> Table:
    """Enrolments per month (of enrolling) by their status now: enrolled, waiting or cancelled."""
    month = month_sql(Enrolment.created_at, dialect(db))
    query = (
        sa.select(month, col(Enrolment.status), sa.func.count())
        .where(col(Enrolment.status).in_(ENROLMENT_STATUSES), *period.where(Enrolment.created_at))
        .group_by(month, col(Enrolment.status))
    )
    found = {(m, s): int(n) for m, s, n in await rows(db, query)}
    return _table(("month", "status"), found, fixed={1: ENROLMENT_STATUSES})


def _rollup_column(key: str) -> Any:
    return {
        "topic": RequestCount.topic,
        "month": RequestCount.month,
        "region": RequestCount.district,
        "channel": RequestCount.channel,
        "lang": RequestCount.lang,
    }[key]


def _live_column(key: str, dialect_name: str) -> Any:
    if key == "month":
        return month_sql(RequestLogEntry.hour, dialect_name)
    if key == "region":
        return sa.func.coalesce(RequestLogEntry.district, "")
    if key == "lang":
        return sa.func.coalesce(RequestLogEntry.lang, "")
    return {"topic": RequestLogEntry.topic, "channel": RequestLogEntry.channel}[key]


def _shown(key: str, value: Any, regions: Mapping[str, str]) -> str:
    text = "" if value is None else str(value)
    if key == "region":
        return regions.get(text, UNKNOWN)
    return text or UNKNOWN


def _table(
    keys: tuple[str, ...], counts: Mapping[Any, int], *, fixed: Mapping[int, tuple[str, ...]] | None = None
) -> Table:
    """A table whose axes are the values seen (months in order, others most counted first)."""
    axes = []
    for d, key in enumerate(keys):
        if fixed and d in fixed:
            axes.append(fixed[d])
            continue
        totals: dict[str, int] = defaultdict(int)
        for cell, n in counts.items():
            totals[cell[d]] += n
        if key == "month":
            axes.append(tuple(sorted(totals)))
        else:
            seen = dict(totals)
            axes.append(tuple(sorted(seen, key=lambda v: (-seen[v], v))))
    return Table(keys=keys, axes=tuple(axes), counts=dict(counts))
