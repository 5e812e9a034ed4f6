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
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.reports.rollup import Period, in_month, live_months, month_of, month_sql, rolled_months, rows
from bot.reports.suppress import Key, Table
from bot.store import (
    Announcement,
    AnnouncementRecipient,
    CaseEvent,
    Enrolment,
    RequestCount,
    RequestLogEntry,
    RequestMarginal,
)

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
            if not n:
                continue
            counts[tuple(_shown(k, v, regions) for k, v in zip(by, values, strict=True))] += int(n)

    if rolled:
        add(await _rolled_requests(db, by, sorted(rolled), rolled))
    for month in await live_months(db, period, rolled, now):
        # One month at a time: its rows are found through the index on `hour`, and its name is known,
        # which spares working out a Dushanbe month for each row.
        columns = [_live_column(k, month) for k in by]
        query = sa.select(*columns, sa.func.count()).where(*in_month(RequestLogEntry.hour, month))
        add(await rows(db, query.group_by(*(c for k, c in zip(by, columns, strict=True) if k != "month"))))
    return _table(tuple(by), counts)


async def requests_by_each(
    db: AsyncSession, regions: Mapping[str, str], *, keys: Sequence[str], period: Period, now: datetime
) -> dict[str, Table]:
    """Requests by each of the keys alone (the report page's one-key tables), the same numbers as
    `requests(by=(key,))`, in a few queries: the closed months' from the small `request_marginals` at once,
    and each open month's rows read once (on PostgreSQL, one scan with GROUPING SETS)."""
    rolled = await rolled_months(db, period, now)
    counts: dict[str, dict[Key, int]] = {k: defaultdict(int) for k in keys}
    stored = {"district" if k == "region" else k: k for k in keys if k != "month"}

    def add(key: str, value: Any, n: Any) -> None:
        if n:
            counts[key][(_shown(key, value, regions),)] += int(n)

    months = sorted(rolled)
    if months:
        if "month" in counts:
            for m in months:
                add("month", m, rolled[m][0])
        value = col(RequestMarginal.value)
        query = (
            sa.select(col(RequestMarginal.key), value, sa.func.sum(col(RequestMarginal.requests)))
            .where(col(RequestMarginal.month).in_(months), col(RequestMarginal.key).in_(sorted(stored)))
            .group_by(col(RequestMarginal.key), value)
        )
        for key, v, n in await rows(db, query):
            add(stored[key], v, n)
    for month in await live_months(db, period, rolled, now):
        within = in_month(RequestLogEntry.hour, month)
        columns = {stored[k]: _live_column(stored[k], month) for k in stored}
        if dialect(db) == "postgresql" and columns:
            # Every column is coalesced to "" (never NULL), so NULL marks the columns a set leaves out.
            sets = sa.func.grouping_sets(*(sa.tuple_(c) for c in columns.values()))
            query = sa.select(*columns.values(), sa.func.count()).where(*within).group_by(sets)
            for row in await rows(db, query):
                *values, n = row
                for key, v in zip(columns, values, strict=True):
                    if v is not None:
                        add(key, v, n)
                        if "month" in counts and key == next(iter(columns)):
                            add("month", month, n)  # each row is in the first key's set once
        else:
            for key, column in columns.items():
                for v, n in await rows(
                    db, sa.select(column, sa.func.count()).where(*within).group_by(column)
                ):
                    add(key, v, n)
            if "month" in counts:
                ((n,),) = await rows(db, sa.select(sa.func.count()).where(*within))
                add("month", month, n)
    return {k: _table((k,), counts[k]) for k in keys}


async def _rolled_requests(
    db: AsyncSession, by: Sequence[str], months: list[str], rolled: Mapping[str, tuple[int, int]]
) -> Iterable[Sequence[Any]]:
    """(values of `by`..., requests) of rolled-up months, from the smallest rollup that has them."""
    if tuple(by) == ("month",):
        return [(m, rolled[m][0]) for m in months if rolled[m][0]]
    if len(by) == 1:
        key = "district" if by[0] == "region" else by[0]
        query = (
            sa.select(col(RequestMarginal.value), sa.func.sum(col(RequestMarginal.requests)))
            .where(col(RequestMarginal.key) == key, col(RequestMarginal.month).in_(months))
            .group_by(col(RequestMarginal.value))
        )
        return await rows(db, query)
    columns = [_rollup_column(k) for k in by]
    query = sa.select(*columns, sa.func.sum(col(RequestCount.requests))).where(
        col(RequestCount.month).in_(months)
    )
    return await rows(db, query.group_by(*columns))


async def women(db: AsyncSession, *, period: Period, now: datetime) -> Table:
    """Women who asked anything, per month: distinct monthly pseudonyms (they cannot be linked across
    months, so a month's count is all that can be said).

    The service replaces her pseudonym when the UTC month turns, five hours after Dushanbe's month: a
    woman who asks in those first hours and again later in the month is counted twice, an overcount of at
    most those hours' women.
    """
    rolled = await rolled_months(db, period, now)
    counts: dict[Key, int] = {(m,): n for m, (_, n) in rolled.items() if n}
    for month in await live_months(db, period, rolled, now):
        # GROUP BY, not count(DISTINCT): PostgreSQL hashes the one and sorts for the other.
        pseudonyms = (
            sa.select(col(RequestLogEntry.pseudonym))
            .where(*in_month(RequestLogEntry.hour, month))
            .group_by(col(RequestLogEntry.pseudonym))
            .subquery()
        )
        ((n,),) = await rows(db, sa.select(sa.func.count()).select_from(pseudonyms))
        if n:
            counts[(month,)] = int(n)
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
    claimed = (
        col(CaseEvent.kind) == "claimed",
        col(CaseEvent.seconds_to_claim).is_not(None),
        *period.where(CaseEvent.hour),
    )
    priority = col(CaseEvent.priority)
    if dialect(db) == "postgresql":
        # The same figures as below, worked out by the database: a year of claims need not cross the wire.
        waited = sa.func.greatest(col(CaseEvent.seconds_to_claim), 0)
        query = (
            sa.select(
                priority,
                sa.func.count(),
                sa.func.percentile_cont(0.5).within_group(waited),
                sa.func.percentile_disc(0.9).within_group(waited),
            )
            .where(*claimed)
            .group_by(priority)
        )
        found = await rows(db, query)
        return ClaimTimes(
            claims=_table(("priority",), {(p,): int(n) for p, n, _, _ in found}),
            median={p: round(float(m)) for p, _, m, _ in found},
            p90={p: int(q) for p, _, _, q in found},
        )
    seconds: dict[str, list[int]] = defaultdict(list)
    for p, waited_ in await rows(db, sa.select(priority, col(CaseEvent.seconds_to_claim)).where(*claimed)):
        seconds[p].append(max(0, int(waited_)))
    return ClaimTimes(
        claims=_table(("priority",), {(p,): len(s) for p, s in seconds.items()}),
        median={p: round(statistics.median(s)) for p, s in seconds.items()},
        p90={p: _nearest_rank(s, 0.9) for p, s in seconds.items()},
    )


def _nearest_rank(values: Sequence[int], share: float) -> int:
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 1))  # ceil(n * share), at least the first
    return ordered[int(rank) - 1]


async def announcements(db: AsyncSession, *, period: Period) -> Table:
    """Announcement messages that were sent, delivered or failed, per month of the announcement's sending.

    Counted per announcement through the recipients' (announcement, outcome) index, and each announcement
    put in its month here: a month of every recipient row would read them all.
    """
    per_announcement = (
        sa.select(
            col(AnnouncementRecipient.announcement_id).label("announcement_id"),
            col(AnnouncementRecipient.outcome).label("outcome"),
            sa.func.count().label("n"),
        )
        .where(col(AnnouncementRecipient.outcome).in_(ANNOUNCEMENT_OUTCOMES))
        .group_by(col(AnnouncementRecipient.announcement_id), col(AnnouncementRecipient.outcome))
        .subquery()
    )
    sent_at = sa.func.coalesce(
        col(Announcement.enqueued_at), col(Announcement.send_at), col(Announcement.created_at)
    )
    query = sa.select(sent_at, per_announcement.c.outcome, per_announcement.c.n).join_from(
        per_announcement, Announcement, col(Announcement.id) == per_announcement.c.announcement_id
    )
    query = query.where(*period.where(sent_at))
    found: dict[Key, int] = defaultdict(int)
    for at, outcome, n in await rows(db, query):
        found[(month_of(_utc(at)), outcome)] += int(n)
    return _table(("month", "outcome"), found, fixed={1: ANNOUNCEMENT_OUTCOMES})


def _utc(moment: Any) -> datetime:
    # A Core query over a coalesce gives the driver's value: SQLite's is a naive UTC text or datetime.
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    assert isinstance(moment, datetime)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


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


def _live_column(key: str, month: str) -> Any:
    if key == "month":
        return sa.literal(month)
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
