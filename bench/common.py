"""What the benchmarks share: databases of their own, percentiles, free ports and the test keys.

Not a benchmark itself. The scripts put the repository's root on sys.path before importing this, so
`tests.fakes` and `tests.conftest` (the test keys) are importable too.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from bot.store.migrate import upgrade
from tests.conftest import TEST_ENCRYPTION_KEY, TEST_HASH_KEY

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"encryption_key": TEST_ENCRYPTION_KEY, "hash_key": TEST_HASH_KEY}
NO_POSTGRES = "PostgreSQL: not measured (set --postgres or HAMROH_TEST_POSTGRES_URL)"
# What a woman might write: a greeting, a language, topics by number and by word, back, menu.
SCRIPT = ("salom", "1", "1", "1", "алимент", "1", "0", "2", "назад", "0")


def postgres_default() -> str | None:
    """The server the tests use, if the environment names one."""
    return os.environ.get("HAMROH_TEST_POSTGRES_URL") or None


def percentile(samples: list[float], q: float) -> float:
    """The q-quantile (0..1) of the samples, nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def machine_cpu() -> tuple[int, int]:
    """The machine's busy and idle time so far, in clock ticks (/proc/stat: every core)."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle and iowait
    return sum(ticks) - idle, idle


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of the machine's CPU (all its cores) in use between two readings of `machine_cpu`."""
    busy, idle = (now - then for now, then in zip(after, before, strict=True))
    return busy / max(1, busy + idle)


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def hamroh_env() -> dict[str, str]:
    """This process's environment without any HAMROH_ setting (a child gets only what we give it)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("HAMROH_")}


async def sqlite_database(folder: Path, name: str = "bench.db") -> str:
    """A migrated SQLite database in `folder`."""
    url = f"sqlite:///{folder / name}"
    await asyncio.to_thread(upgrade, url)
    return url


@asynccontextmanager
async def postgres_database(server: str) -> AsyncIterator[str]:
    """A migrated PostgreSQL database of our own on `server`, dropped afterwards (even if connected)."""
    name = f"hamroh_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = make_url(server).set(database=name).render_as_string(hide_password=False)
            await asyncio.to_thread(upgrade, url)
            yield url
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
