"""The report page over 1,000,000 request-log rows on PostgreSQL: how long it takes to answer.

    .venv/bin/python bench/reports.py [--postgres URL] [--rows 1000000] [--runs 20]

A PostgreSQL database of its own (on --postgres, HAMROH_BENCH_POSTGRES_URL or HAMROH_TEST_POSTGRES_URL) is
migrated and filled with one INSERT ... SELECT over generate_series: `--rows` requests spread over the 365
days before the bench's clock (the 28th of a month, 18:00 UTC, so the open month, read live, already holds
most of its rows: the worst case), with real topics and districts of flows/ in skewed proportions, a third
of districts unknown; 20,000 case events, 100,000 announcement recipients and 5,000 enrolments beside them.

Printed (p50 and p95 of `--runs` runs each):
- the baseline: `SELECT count(*) FROM request_log`;
- plain GROUP BY: one of the page's tables (requests by topic) counted from every row, as without rollup;
- the page's first load, once: it rolls up the eleven closed months;
- the page's tables (bot.reports.report.load), and the whole page through the app (httpx ASGI transport,
  a coordinator's session, template and suppression included);
- one API table: /api/reports/requests?by=topic,month,region.
The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.app import create_app
from api.deps import SESSION_COOKIE
from bench.common import KEYS, percentile, postgres_database, postgres_default
from bot.config import Settings
from bot.reports import aggregate, report
from bot.reports.rollup import Period
from bot.runtime import build
from bot.staff.accounts import issue_token
from bot.staff.sessions import start_session
from bot.store import Staff
from bot.store.db import transaction

NOW = datetime(2026, 11, 28, 18, tzinfo=UTC)
CHANNELS = ["telegram"] * 30 + ["sms"] * 19 + ["simulator"]
LANGS = ["tg"] * 32 + ["ru"] * 17 + [None]

FILL = """
INSERT INTO request_log (hour, topic, channel, lang, district, pseudonym)
SELECT hour,
       ($2::text[])[1 + floor(power(random(), 2) * array_length($2::text[], 1))::int],
       ($3::text[])[1 + floor(random() * array_length($3::text[], 1))::int],
       ($4::text[])[1 + floor(random() * array_length($4::text[], 1))::int],
       CASE WHEN random() < 0.33 THEN NULL
            ELSE ($5::text[])[1 + floor(power(random(), 1.5) * array_length($5::text[], 1))::int] END,
       'p' || floor(random() * 40000)::int
FROM (SELECT date_trunc('hour', $1::timestamptz - random() * interval '365 days') AS hour
      FROM generate_series(1, $6::int)) AS asked
ORDER BY hour  -- as the log grows: each row is written in the hour she asked
"""
EVENTS = """
INSERT INTO case_events (kind, hour, priority, queue, category, channel, outcome, seconds_to_claim)
SELECT (ARRAY['opened', 'claimed', 'closed'])[1 + i % 3],
       date_trunc('hour', $1::timestamptz - random() * interval '365 days'),
       CASE WHEN random() < 0.2 THEN 'urgent' ELSE 'normal' END, 'support', 'violence', 'sms',
       CASE WHEN i % 3 = 2 THEN (ARRAY['referred', 'resolved', 'information', 'no_contact'])[1 + i % 4] END,
       CASE WHEN i % 3 = 1 THEN floor(random() * 3600)::int END
FROM generate_series(1, 20000) AS i
"""
ANNOUNCED = """
WITH a AS (
  INSERT INTO announcements (status, text_tg, text_ru, audience, audience_size, created_at)
  VALUES ('sent', 't', 'r', '{}', 0, $1) RETURNING id
)
INSERT INTO announcement_recipients (announcement_id, channel, lang, outcome, updated_at)
SELECT a.id, 'sms', 'tg', (ARRAY['delivered', 'delivered', 'sent', 'failed'])[1 + i % 4],
       $1::timestamptz - random() * interval '365 days'
FROM a, generate_series(1, 100000) AS i
"""
ENROLLED = """
WITH c AS (
  INSERT INTO courses (title_tg, title_ru, title_en, description_tg, description_ru, place, partner,
                       partner_fields, example, active, created_at)
  VALUES ('т', 'р', 'e', '', '', '', '', 'phone', false, true, $1) RETURNING id
), women AS (
  INSERT INTO contacts (channel, fingerprint, address, script, pseudonym, pseudonym_month, created_at,
                        subscribed, opted_out, reachable, may_have_case)
  SELECT 'sms', md5(i::text), '\\x00'::bytea, 'cyrillic', 'p', '2026-11', $1, false, false, true, false
  FROM generate_series(1, 5000) AS i RETURNING id
)
INSERT INTO enrolments (course_id, contact_id, status, created_at, updated_at)
SELECT c.id, women.id, (ARRAY['enrolled', 'waiting', 'cancelled'])[1 + women.id % 3],
       $1::timestamptz - random() * interval '365 days', $1
FROM c, women
"""


async def fill(url: str, rows: int, topics: list[str], districts: list[str]) -> float:
    """Fill the database; the seconds it took."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    started = time.perf_counter()
    try:
        await connection.execute(FILL, NOW, topics, CHANNELS, LANGS, districts, rows)
        await connection.execute(EVENTS, NOW)
        await connection.execute(ANNOUNCED, NOW)
        await connection.execute(ENROLLED, NOW)
        # What autovacuum does to tables that only grow (PostgreSQL 13 and later): statistics, and the
        # visibility map that lets an index answer alone.
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()
    return time.perf_counter() - started


async def timed(runs: int, step: Callable[[], Awaitable[object]]) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await step()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def line(name: str, samples: list[float]) -> str:
    return f"  {name:<52} p50 {percentile(samples, 0.5):8.1f} ms   p95 {percentile(samples, 0.95):8.1f} ms"


async def measure(url: str, rows: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            env="development",
            database_url=url,
            var_dir=Path(folder),
            encryption_key=KEYS["encryption_key"],
            hash_key=KEYS["hash_key"],
        )
        hamroh = build(settings)
        hamroh.clock = lambda: NOW
        topics = sorted({n.topic for n in hamroh.flows.nodes.values() if n.topic})
        districts = sorted(hamroh.flows.districts)
        regions = {d.id: d.region for d in hamroh.flows.districts.values()}
        print(
            f"filling: {rows:,} requests ({len(topics)} topics, {len(districts)} districts) ...", flush=True
        )
        print(f"  filled in {await fill(url, rows, topics, districts):.1f} s")
        async with transaction(hamroh.engine) as db:
            staff = Staff(name="zarina", role="coordinator", password_hash="-", created_at=NOW)
            db.add(staff)
            await db.flush()
            token = await issue_token(db, name="zarina", now=NOW)
            login = await start_session(db, staff=staff, now=NOW)
        app = create_app(settings, hamroh)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hamroh.bench") as client:
            client.cookies.set(SESSION_COOKIE, login.token)

            async def count() -> None:
                async with hamroh.engine.connect() as connection:
                    await connection.exec_driver_sql("SELECT count(*) FROM request_log")

            async def group_by() -> None:
                async with hamroh.engine.connect() as connection:
                    await connection.exec_driver_sql("SELECT topic, count(*) FROM request_log GROUP BY topic")

            async def tables() -> None:
                await report.load(
                    hamroh.engine, ["page"], regions=regions, period=Period(), now=NOW, threshold=5
                )

            async def page() -> None:
                answer = await client.get("/coordinate/reports")
                assert answer.status_code == 200, answer.status_code

            async def api() -> None:
                answer = await client.get(
                    "/api/reports/requests?by=topic,month,region",
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert answer.status_code == 200, answer.text[:200]

            await count()  # warm the cache as every measure after it will find it
            print(f"PostgreSQL, {rows:,} request-log rows; {runs} runs each:")
            print(line("baseline: SELECT count(*) FROM request_log", await timed(runs, count)))
            print(line("plain GROUP BY topic over every row (no rollup)", await timed(runs, group_by)))
            print(line("first page load (rolls up 11 closed months), once", await timed(1, page)))
            print(line("the page's tables (bot.reports.report.load)", await timed(runs, tables)))
            print(line("GET /coordinate/reports (whole page)", await timed(runs, page)))

            async def each() -> None:
                async with transaction(hamroh.engine) as db:
                    keys = [by[0] for by in report.PAGE_REQUESTS]
                    await aggregate.requests_by_each(db, regions, keys=keys, period=Period(), now=NOW)

            print(line("  of which requests by each key alone", await timed(runs, each)))
            for name in report.OTHERS:

                async def one(name: str = name) -> None:
                    async with transaction(hamroh.engine) as db:
                        await report.publish(db, name, regions=regions, period=Period(), now=NOW, threshold=5)

                print(line(f"  of which {name}", await timed(runs, one)))
            print(line("GET /api/reports/requests?by=topic,month,region", await timed(runs, api)))
        await hamroh.engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--postgres", default=os.environ.get("HAMROH_BENCH_POSTGRES_URL") or postgres_default()
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    if not args.postgres:
        sys.exit("a PostgreSQL server is needed: --postgres URL or HAMROH_BENCH_POSTGRES_URL")
    async with postgres_database(args.postgres) as url:
        await measure(url, args.rows, args.runs)


if __name__ == "__main__":
    asyncio.run(main())
