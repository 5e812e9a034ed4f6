"""Turns per second: simulated women talking through the service and store, beside the engine alone.

    .venv/bin/python bench/turns.py [--women 1000] [--turns 10] [--concurrency 20] [--postgres URL]

PostgreSQL is measured when --postgres or HAMROH_TEST_POSTGRES_URL gives a server; a database of its own is
created and dropped. The engine-alone walk is the baseline measured in the same run: the ratio says what the
database, encryption and outbox cost per turn.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import ROOT
from bot.conversation.engine import step
from bot.conversation.flowload import load_flowset
from bot.conversation.flows import FlowSet
from bot.conversation.i18n import load_translations
from bot.conversation.model import Input, Session
from bot.runtime import new_token
from bot.service import Hamroh, Inbound
from bot.store.crypto import make_vault
from bot.store.db import create_engine
from bot.store.migrate import upgrade

# What a woman might send: the greeting, a language, topics by number and by word, back, menu.
SCRIPT = ("salom", "1", "1", "1", "алимент", "1", "0", "2", "назад", "0")


def script_for(turns: int) -> list[str]:
    return [SCRIPT[n % len(SCRIPT)] for n in range(turns)]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(name: str, turns: int, seconds: float, latencies: list[float]) -> float:
    rate = turns / seconds
    p50, p99 = statistics.median(latencies) * 1000, percentile(latencies, 0.99) * 1000
    figures = f"{rate:10.0f} turns/s   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms"
    print(f"{name:<28} {turns:>7} turns {seconds:8.2f} s {figures}")
    return rate


def engine_alone(flows: FlowSet, women: int, turns: int) -> float:
    now = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    latencies: list[float] = []
    started = time.perf_counter()
    for _ in range(women):
        session = Session()
        for text in script_for(turns):
            t0 = time.perf_counter()
            session = step(flows, session, Input(text), now).session
            latencies.append(time.perf_counter() - t0)
    return report("engine alone", women * turns, time.perf_counter() - started, latencies)


async def through_service(
    name: str, url: str, flows: FlowSet, women: int, turns: int, concurrency: int
) -> float:
    engine = create_engine(url)
    hamroh = Hamroh(
        engine=engine,
        flows=flows,
        vault=make_vault(Fernet.generate_key().decode(), "k" * 48),
        clock=lambda: datetime.now(UTC),
        new_token=new_token,
    )
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)

    async def woman(n: int) -> None:
        async with gate:
            for m, text in enumerate(script_for(turns)):
                t0 = time.perf_counter()
                await hamroh.handle(Inbound("sms", f"+99290{n:07d}", text, provider_id=f"b{n}-{m}"))
                latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    try:
        await asyncio.gather(*(woman(n) for n in range(women)))
    finally:
        await engine.dispose()
    return report(name, women * turns, time.perf_counter() - started, latencies)


async def with_postgres(server: str, run: Callable[[str], Awaitable[float]]) -> float:
    name = f"hamroh_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
        await asyncio.to_thread(upgrade, url)
        return await run(url)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--women", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--postgres", default=os.environ.get("HAMROH_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    flows = load_flowset(ROOT / "flows", load_translations(ROOT / "locales"))
    print(f"{args.women} women x {args.turns} turns, {args.concurrency} at a time")
    baseline = engine_alone(flows, args.women, args.turns)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        await asyncio.to_thread(upgrade, url)
        rate = await through_service("service + SQLite", url, flows, args.women, args.turns, args.concurrency)
        print(f"{'':<28} engine alone / service on SQLite = {baseline / rate:.1f}x")
    if args.postgres:
        rate = await with_postgres(
            args.postgres,
            lambda url: through_service(
                "service + PostgreSQL", url, flows, args.women, args.turns, args.concurrency
            ),
        )
        print(f"{'':<28} engine alone / service on PostgreSQL = {baseline / rate:.1f}x")
    else:
        print("PostgreSQL: not measured (set --postgres or HAMROH_TEST_POSTGRES_URL)")


if __name__ == "__main__":
    asyncio.run(main())
