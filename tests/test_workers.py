"""`hamroh serve --workers N`: every worker answers, and the dispatcher and the jobs run in one of them,
elected in the database (bot.leader), which another takes over from when it dies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from itertools import count, pairwise
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.types import ASGIApp

from bot.config import ROOT
from bot.leader import LOCK_NAME, lead
from bot.leases import lock_key
from tests.conftest import TEST_ENCRYPTION_KEY, TEST_HASH_KEY, run_hamroh, serving_process, until_serving
from tests.fakes.telegram_api import FakeTelegram, Her

SECRET = "webhook-secret_0123456789"
LEADING = re.compile(r": leading \(pid (\d+)\)")
READY = re.compile(r"worker (\d+) ready")
WAIT_SECONDS = 30.0  # a hang guard for a loaded machine, never a measure of speed
JOBS_EVERY = 1.0  # HAMROH_JOBS_INTERVAL_SECONDS in these tests
HOLD = 4.0  # HAMROH_DISPATCH_SENDER_HOLD_SECONDS: how soon a frozen leader is replaced


# --- the refusal ----------------------------------------------------------------------------------------


def test_serve_refuses_several_workers_on_sqlite_and_says_why(tmp_path: Path) -> None:
    result = run_hamroh(["serve", "--workers", "2"], tmp_path)  # the default database: a SQLite file

    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("hamroh: --workers 2 needs PostgreSQL: SQLite has a single writer")


def test_serve_refuses_no_workers(tmp_path: Path) -> None:
    result = run_hamroh(["serve", "--workers", "0"], tmp_path)

    assert result.returncode == 2
    assert "--workers: must be at least 1" in result.stderr


# --- a worker that never starts --------------------------------------------------------------------------


def never_starts() -> ASGIApp:
    """An app factory that raises, as a worker's does when it cannot build its app."""
    raise RuntimeError("this worker cannot build its app")


def starts_broken() -> ASGIApp:
    """An app whose start-up fails, as a worker's does when what it starts beside the app cannot start."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("this worker cannot start")
        yield

    return Starlette(lifespan=lifespan)


# The real command, whose workers build one of the apps above instead of Hamroh's (the first argument).
SERVE_WITH = (
    "import sys; import api.workers as workers; workers.FACTORY = sys.argv.pop(1); "
    "from bot.cli import main; sys.exit(main())"
)


@pytest.mark.postgres
@pytest.mark.parametrize("factory", ["never_starts", "starts_broken"])
def test_a_worker_that_never_starts_stops_serve_with_a_clear_message(
    tmp_path: Path, postgres_url: str, factory: str
) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HAMROH_")} | {
        "HAMROH_DATABASE_URL": postgres_url,
        "HAMROH_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "HAMROH_HASH_KEY": TEST_HASH_KEY,
        "HAMROH_VAR_DIR": str(tmp_path),
        "PYTHONPATH": str(ROOT),  # the workers find this module
    }
    command = ["serve", "--port", "0", "--workers", "2"]
    with subprocess.Popen(
        [sys.executable, "-c", SERVE_WITH, f"tests.test_workers:{factory}", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
        cwd=tmp_path,
        start_new_session=True,  # serve and its workers, to end together if serve never stops
    ) as serve:
        try:
            said, _ = serve.communicate(timeout=WAIT_SECONDS)  # one that restarts workers forever fails here
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(serve.pid, signal.SIGKILL)

    assert serve.returncode == 1, said
    assert "a worker could not start" in said
    assert "starting another" not in said
    assert "this worker cannot" in said  # and why, in the worker's own words


# --- the election, in one process -----------------------------------------------------------------------


class Term:
    """A `work` for `lead` that says when it starts and when it is told to stop."""

    def __init__(self, name: str, said: list[str]) -> None:
        self.name, self.said = name, said

    async def __call__(self, resign: asyncio.Event) -> None:
        self.said.append(f"{self.name} leads")
        await resign.wait()
        self.said.append(f"{self.name} resigns")


async def until(condition: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while not (result := condition()):
        assert time.monotonic() < deadline, "waited too long"
        await asyncio.sleep(0.02)
    return result


async def leader_locks(url: str) -> list[bool]:
    """Whether each session asking for the leader lock holds it (True) or waits for it (False)."""
    key = lock_key(LOCK_NAME) & 0xFFFF_FFFF_FFFF_FFFF
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT granted FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND objid = $2"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            key >> 32,
            key & 0xFFFF_FFFF,
        )
    finally:
        await connection.close()
    return sorted(row["granted"] for row in rows)


@pytest.mark.postgres
async def test_one_leads_the_other_waits_in_the_database_and_takes_over_when_it_stops(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    said: list[str] = []
    stops = {name: asyncio.Event() for name in ("a", "b")}
    # The one that waits gives up every 0.2 s and asks again (serve waits 30 s at a time).
    runs = {
        name: asyncio.create_task(lead(postgres_url, Term(name, said), stops[name], hold=5, patience=0.2))
        for name in stops
    }
    try:
        await until(lambda: said)
        assert await until_async(lambda: leader_locks(postgres_url), [False, True])
        [first] = [name for name in stops if said == [f"{name} leads"]]
        other = "b" if first == "a" else "a"
        asked = await until_async_value(lambda: waiting_since(postgres_url))
        await until_async_value(lambda: waiting_since(postgres_url), unless=asked)  # timed out, asks again
        assert said == [f"{first} leads"]
        assert not [record for record in caplog.records if record.levelno >= logging.WARNING]

        stops[first].set()
        await until(lambda: f"{other} leads" in said)
        assert said == [f"{first} leads", f"{first} resigns", f"{other} leads"]
        await runs[first]
        assert await leader_locks(postgres_url) == [True]
    finally:
        for stop in stops.values():
            stop.set()
        await asyncio.gather(*runs.values())
    assert await leader_locks(postgres_url) == []


@pytest.mark.postgres
async def test_a_waiting_worker_that_stops_leaves_nobody_waiting_in_the_database(postgres_url: str) -> None:
    said: list[str] = []
    leader_stop, follower_stop = asyncio.Event(), asyncio.Event()
    leader = asyncio.create_task(lead(postgres_url, Term("leader", said), leader_stop, hold=5))
    await until(lambda: said)
    follower = asyncio.create_task(lead(postgres_url, Term("follower", said), follower_stop, hold=5))
    try:
        assert await until_async(lambda: leader_locks(postgres_url), [False, True])

        follower_stop.set()
        await follower  # its wait is cancelled on the server too: the lock is not taken for nobody
        assert await leader_locks(postgres_url) == [True]
        assert said == ["leader leads"]
    finally:
        leader_stop.set()
        follower_stop.set()
        await asyncio.gather(leader, follower)


async def test_on_sqlite_the_one_process_leads_at_once(sqlite_url: str) -> None:
    said: list[str] = []
    stop = asyncio.Event()
    run = asyncio.create_task(lead(sqlite_url, Term("it", said), stop, hold=5))
    await until(lambda: said)
    stop.set()
    await run
    assert said == ["it leads", "it resigns"]


async def waiting_since(url: str) -> datetime | None:
    """When the statement waiting for the leader lock began (None if none waits)."""
    connection = await asyncpg.connect(url)
    try:
        started: datetime | None = await connection.fetchval(
            "SELECT query_start FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE '%pg_advisory_lock%'"
        )
    finally:
        await connection.close()
    return started


async def until_async_value(read: Callable[[], Any], *, unless: object = None) -> Any:
    """The first value of `read` that is neither None nor `unless`."""
    deadline = time.monotonic() + WAIT_SECONDS
    while (value := await read()) is None or value == unless:
        assert time.monotonic() < deadline, "waited too long"
        await asyncio.sleep(0.02)
    return value


async def until_async(read: Callable[[], Any], expected: object) -> bool:
    deadline = time.monotonic() + WAIT_SECONDS
    while (await read()) != expected:
        assert time.monotonic() < deadline, f"never saw {expected}"
        await asyncio.sleep(0.05)
    return True


# --- serve with two workers, as real processes ----------------------------------------------------------


class Output:
    """serve's output lines as they come (all of them kept in `seen`)."""

    def __init__(self, lines: queue.Queue[str], seen: list[str]) -> None:
        self.lines, self.seen = lines, seen

    def until(
        self,
        pattern: re.Pattern[str],
        unless: Callable[[re.Match[str]], bool] = lambda m: False,
        *,
        after: int = 0,
    ) -> str:
        """The first group of the first line from line `after` on that matches `pattern` (skipping those
        `unless` says no to), waiting for it if need be."""
        for line in self.seen[after:]:
            if (match := pattern.search(line)) and not unless(match):
                return match.group(1)
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if (match := pattern.search(line)) and not unless(match):
                return match.group(1)
        raise AssertionError(f"no line matched {pattern.pattern}:\n" + "\n".join(self.seen))


def query(url: str, sql: str) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(url)
        try:
            return list(await connection.fetch(sql))
        finally:
            await connection.close()

    return asyncio.run(run())


def wait_for(condition: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while not (result := condition()):
        assert time.monotonic() < deadline, "waited too long"
        time.sleep(0.05)
    return result


CHATS = count(500_001)
UPDATES = count(1)  # update ids are the bot's, not hers: the duplicate check goes by them


def she_writes(url: str) -> tuple[int, str]:
    """A new woman's first message, on a connection of its own; her chat id and the worker that answered."""
    her = Her(chat_id=next(CHATS), update_ids=UPDATES)
    answer = httpx.post(
        f"{url}/webhooks/telegram",
        json=her.says("salom"),
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
        timeout=WAIT_SECONDS,
    )
    assert answer.status_code == 200
    return her.chat_id, answer.headers["x-hamroh-worker"]


def sent_after(telegram: FakeTelegram, chat: int) -> None:
    """Once the reply to her message has reached the fake Bot API."""
    wait_for(lambda: [call for call in telegram.calls_to("sendMessage") if call.chat_id == chat])


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram() as fake:
        yield fake


@pytest.mark.postgres
def test_two_workers_answer_send_each_message_once_run_the_jobs_once_and_hand_over_the_lead(
    tmp_path: Path, postgres_url: str, telegram: FakeTelegram
) -> None:
    environment = {
        "HAMROH_DATABASE_URL": postgres_url,
        "HAMROH_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "HAMROH_HASH_KEY": TEST_HASH_KEY,
        "HAMROH_TELEGRAM_TOKEN": telegram.token,
        "HAMROH_TELEGRAM_SECRET": SECRET,
        "HAMROH_TELEGRAM_API_URL": telegram.api_url,
        "HAMROH_JOBS_INTERVAL_SECONDS": str(JOBS_EVERY),
        "HAMROH_DISPATCH_SENDER_HOLD_SECONDS": str(HOLD),
    }
    seen: list[str] = []
    with serving_process(tmp_path, "--workers", "2", **environment) as (_, lines):
        url = until_serving(lines, seen)
        output = Output(lines, seen)
        first = output.until(READY)
        workers = {first, output.until(READY, lambda m: m.group(1) == first)}
        leader = output.until(LEADING)

        # Both workers answer: requests eight at a time, each on a connection of its own.
        answered: dict[str, int] = {}
        chats: list[int] = []
        with ThreadPoolExecutor(8) as pool:
            while len(answered) < 2 and len(chats) < 200:
                for chat, pid in pool.map(lambda _: she_writes(url), range(8)):
                    chats.append(chat)
                    answered[pid] = answered.get(pid, 0) + 1
        assert set(answered) == workers, answered

        # Each reply leaves once, from the one dispatcher.
        def all_sent() -> list[asyncpg.Record]:
            rows = query(postgres_url, "SELECT status, count(*) AS n FROM outbox GROUP BY status")
            return rows if [row["status"] for row in rows] == ["sent"] else []

        [sent] = wait_for(all_sent)
        texts = telegram.calls_to("sendMessage")
        assert len(texts) == sent["n"]
        assert {call.chat_id for call in texts} == set(chats)

        # The jobs run once per interval, in the leader alone; the other worker waits for the lead.
        runs: set[datetime] = set()
        started = time.monotonic()
        while time.monotonic() - started < 3.5 * JOBS_EVERY:
            runs |= {
                row["ran_at"]
                for row in query(postgres_url, "SELECT ran_at FROM job_runs WHERE name = 'cases'")
            }
            time.sleep(0.05)
        times = sorted(runs)
        assert len(times) >= 2
        assert all(later - earlier >= timedelta(seconds=JOBS_EVERY) for earlier, later in pairwise(times))
        assert asyncio.run(leader_locks(postgres_url)) == [False, True]
        assert sum(bool(LEADING.search(line)) for line in seen) == 1

        # The leader freezes: within the hold the other worker leads and sends; woken, it stands down.
        os.kill(int(leader), signal.SIGSTOP)
        try:
            successor = output.until(LEADING, lambda m: m.group(1) == leader)
            assert successor in workers - {leader}
            sent_after(telegram, she_writes(url)[0])
        finally:
            os.kill(int(leader), signal.SIGCONT)
        output.until(re.compile(rf"no longer leading \(pid ({leader})\)"))

        # The new leader dies: the first one, waiting again, leads at once; serve starts another worker.
        mark = len(seen)
        os.kill(int(successor), signal.SIGKILL)
        assert output.until(LEADING, after=mark) == leader
        sent_after(telegram, she_writes(url)[0])
        output.until(re.compile(rf"worker ({successor}) ended \(killed by SIGKILL\): starting another"))

    assert not [line for line in seen if "Traceback" in line]
