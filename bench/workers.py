"""`hamroh serve --workers N` on PostgreSQL: webhooks under load with 1 and N workers, and what serve costs
at rest.

    .venv/bin/python bench/workers.py [--workers 1 2] [--seconds 8] [--connections 50 100]
                                      [--channels sms telegram] [--idle 30] [--postgres URL]

Load: the real command, `hamroh serve --workers N` (a database of its own each time, the dispatcher off as
in bench/webhooks.py, the jobs on as serve always runs them), driven by wrk with bench/webhooks.py's signed
requests (every request a new message). Printed per case: req/s, p50/p99, answers other than 2xx/3xx, and
the CPU per request of the whole of serve (the parent and every worker, from /proc), then the ratios of N
workers to one: req/s (goal with 2 workers on 2 cores: at least 1.6) and CPU per request (goal: within
10%). PostgreSQL, wrk and this script share the cores with serve.

At rest (--idle SECONDS, 0 to skip): serve with the dispatcher on (Telegram configured, a fake Bot API in
this process, nothing to send) and the jobs every 30 s, left alone for SECONDS once it has settled. Printed
for 1 worker and for N: each worker's CPU (the leader's and the others'), and the transactions a second the
database counted for serve's database (pg_stat_database commits and rollbacks: a statement outside a
transaction counts one; PostgreSQL flushes these counts at most once a second per session, so a short
window is rough). What N workers cost beyond one is what the workers that do not lead cost.
Then, from rest, how soon a reply leaves (--replies N, 0 to skip): N new women write one message each, a
pause apart so that the dispatcher is idle again each time; for each, the time from the webhook's answer
(her turn has committed) to her first reply reaching the fake Bot API, split by whether the worker that
answered leads (the dispatcher runs beside the turn) or not (the reply is written by another process).

Absolute figures vary by machine and by what else runs on it; the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    NO_POSTGRES,
    ROOT,
    busy_share,
    free_port,
    hamroh_env,
    machine_cpu,
    postgres_database,
    postgres_default,
)
from bench.webhooks import (
    CHANNELS,
    NO_WRK,
    SECRET,
    STARTUP_SECONDS,
    TELEGRAM_PATH,
    WARM_SECONDS,
    Post,
    Result,
    Senders,
    Server,
    app_settings,
    run_wrk,
)
from tests.fakes.telegram_api import FakeTelegram, Her

LEADING = re.compile(r": leading \(pid (\d+)\)")
SETTLE_SECONDS = 5.0
REPLY_PAUSE = 1.0  # seconds between women in the reply latency run: the dispatcher is idle again by then
REPLY_WAIT = 30.0  # a hang guard for one reply
FIRST_CHAT = 300_000_000


def environment(settings: dict[str, object], **more: object) -> dict[str, str]:
    """Settings as the HAMROH_ variables serve reads."""
    values = {**settings, **more}
    return hamroh_env() | {
        f"HAMROH_{name.upper()}": str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in values.items()
    }


class Serve(Server):
    """`hamroh serve --workers N` in a process of its own; its output goes to a log file."""

    def __init__(self, workers: int, folder: Path, env: dict[str, str]) -> None:
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"serve-{self.port}.log"
        command = [
            sys.executable,
            "-m",
            "bot.cli",
            "serve",
            "--port",
            str(self.port),
            "--workers",
            str(workers),
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    async def ready(self) -> None:
        """Once every worker has answered (each on a connection of its own)."""
        await super().ready()
        deadline = time.monotonic() + STARTUP_SECONDS
        answered: set[str] = set()
        while len(answered) < self.workers and time.monotonic() < deadline:
            async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
                answer = await client.get("/healthz")
            answered.add(answer.headers.get("x-hamroh-worker", "one"))
            await asyncio.sleep(0.05)
        if len(answered) < self.workers:
            raise RuntimeError(f"only {len(answered)} of {self.workers} workers answered")

    def pids(self) -> list[int]:
        """serve and the worker processes it started (not multiprocessing's resource tracker)."""
        found = [self.process.pid]
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat[1]) == self.process.pid and b"resource_tracker" not in command:
                found.append(int(entry.name))
        return found

    def cpu_seconds(self) -> float:
        """CPU of serve and all its workers so far."""
        return sum(process_cpu(pid) for pid in self.pids())

    def leader(self) -> int | None:
        said = LEADING.findall(self.log.read_text(errors="replace"))
        return int(said[-1]) if said else None


def process_cpu(pid: int) -> float:
    """CPU seconds of a process so far: the scheduler's count in nanoseconds where the kernel keeps it
    (/proc/PID/schedstat), else user and system time in clock ticks, which overcount a process that wakes
    ten times a second on the tick."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- under load -----------------------------------------------------------------------------------------


async def under_load(args: argparse.Namespace, folder: Path) -> None:
    print(
        f"\nUnder load: `hamroh serve --workers N` (dispatcher off, jobs on), wrk for {args.seconds} s a "
        f"case after {WARM_SECONDS} s of warm-up. cpu ms/req: the CPU per request of serve and all its "
        "workers; ratios: to the first --workers; pg ms/req: the CPU per request of the PostgreSQL sessions\n"
        "of serve's database; idle: the share of the machine's CPU left unused; split: the CPU of serve's "
        "parent, then of each worker. With all cores busy, N workers can reach at most\n"
        "N x serve / (serve + pg + wrk) per request times one worker's rate."
    )
    print(
        f"{'channel':<9} {'conns':>5} {'workers':>7} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'failed':>6} "
        f"{'cpu ms/req':>10} {'req/s ratio':>11} {'cpu ratio':>9} {'pg ms/req':>8} {'idle':>7}  split"
    )
    senders = Senders()
    results: dict[tuple[str, int, int], Result] = {}
    for workers in args.workers:
        async with postgres_database(args.postgres) as url:
            serve = Serve(workers, folder, environment(app_settings(url, folder)))
            try:
                await serve.ready()
                for channel in args.channels:
                    for connections in args.connections:
                        warm = senders.make(channel, 2000)
                        await run_wrk(serve, channel, connections, WARM_SECONDS, warm, folder)
                        requests = senders.make(channel, args.pool)
                        case = (channel, connections, workers)
                        results[case] = await measured(serve, case, requests, args, folder, url, results)
            finally:
                serve.stop()


async def measured(
    serve: Serve,
    case: tuple[str, int, int],
    requests: list[Post],
    args: argparse.Namespace,
    folder: Path,
    url: str,
    results: dict[tuple[str, int, int], Result],
) -> Result:
    """One case under wrk, printed with its ratios to the same case with the first --workers."""
    channel, connections, workers = case
    before = {pid: process_cpu(pid) for pid in serve.pids()}
    database, machine = database_cpu(url), machine_cpu()
    result = await run_wrk(serve, channel, connections, args.seconds, requests, folder)
    database_ms = (database_cpu(url) - database) * 1000 / max(1, result.requests)
    idle = 1 - busy_share(machine, machine_cpu())
    one = results.get((channel, connections, args.workers[0]))
    ratios = (
        f"{result.rate / one.rate:>11.2f} {result.cpu_ms / one.cpu_ms:>9.2f}"
        if one is not None and one.cpu_ms
        else f"{'':>11} {'':>9}"
    )
    wrapped = "  (ran past its requests: raise --pool)" if result.wrapped else ""
    print(
        f"{channel:<9} {connections:>5} {workers:>7} {result.rate:>7.0f} {result.p50_ms:>8.2f} "
        f"{result.p99_ms:>8.2f} {result.failed:>6} {result.cpu_ms:>10.3f} {ratios} {database_ms:>8.3f} "
        f"{idle:>7.0%}  {split(before)}{wrapped}",
        flush=True,
    )
    return result


def database_cpu(url: str) -> float:
    """CPU seconds so far of the PostgreSQL sessions connected to the database at `url` (their process
    titles name it; readable when PostgreSQL runs on this machine and we may read its /proc)."""
    name = f" {url.rsplit('/', 1)[1]} ".encode()
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"postgres: ") and name in title:
                total += process_cpu(int(entry.name))
    return total


def split(before: dict[int, float]) -> str:
    """How the CPU spent since `before` was shared among the processes (the parent's share first)."""
    used = [process_cpu(pid) - cpu for pid, cpu in before.items()]
    total = sum(used) or 1.0
    return "/".join(f"{100 * share / total:.0f}" for share in used) + "%"


# --- at rest --------------------------------------------------------------------------------------------


async def transactions(url: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        value = await connection.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        )
    finally:
        await connection.close()
    return int(value)


async def at_rest(args: argparse.Namespace, folder: Path) -> None:
    print(
        "\nAt rest: `hamroh serve --workers N` with the dispatcher on (Telegram, nothing to send) and the "
        f"jobs every 30 s, left alone {args.idle:.0f} s after it settled.\n"
        "transactions/s: what serve's database counted (each statement outside a transaction counts one)."
    )
    with FakeTelegram() as telegram:
        for workers in args.workers:
            async with postgres_database(args.postgres) as url:
                settings = app_settings(url, folder) | {
                    "dispatch_in_process": True,
                    "telegram_api_url": telegram.api_url,
                    "log_level": "INFO",
                }
                serve = Serve(workers, folder, environment(settings))
                try:
                    await serve.ready()
                    await asyncio.sleep(SETTLE_SECONDS)
                    pids = serve.pids()
                    cpu = {pid: process_cpu(pid) for pid in pids}
                    counted = await transactions(url)
                    await asyncio.sleep(args.idle)
                    counted = await transactions(url) - counted - 1  # our own first look counts one
                    used = {pid: process_cpu(pid) - cpu[pid] for pid in pids}
                    leader = serve.leader()
                    latencies = await reply_latencies(serve, telegram, args.replies, workers)
                finally:
                    serve.stop()
                names = {serve.process.pid: "serve (parent)"}
                for pid in pids[1:]:
                    names[pid] = "leader" if pid == leader else "waiting worker"
                said = ", ".join(f"{names[pid]} {used[pid] * 1000 / args.idle:.1f} ms/s" for pid in pids)
                plural = "s" if workers > 1 else ""
                print(
                    f"{workers} worker{plural}: {counted / args.idle:.2f} transactions/s; CPU: {said}",
                    flush=True,
                )
                for where, seconds in latencies.items():
                    if seconds:
                        print(f"  reply from rest, turn in {where}: {summary(seconds)}", flush=True)


def summary(seconds: list[float]) -> str:
    return (
        f"n={len(seconds)}, p50 {1000 * statistics.median(seconds):.1f} ms, max {1000 * max(seconds):.1f} ms"
    )


async def reply_latencies(
    serve: Serve, telegram: FakeTelegram, count: int, workers: int
) -> dict[str, list[float]]:
    """Seconds from each new woman's webhook answer to her first reply at the fake Bot API, by whether the
    worker that answered leads."""
    leader = str(serve.leader() or "one") if workers > 1 else "one"
    found: dict[str, list[float]] = {"the leader": [], "another worker": []}
    chats, updates = itertools.count(FIRST_CHAT + 1_000 * workers), itertools.count(1)
    headers = {"x-telegram-bot-api-secret-token": SECRET}
    for _ in range(count):
        await asyncio.sleep(REPLY_PAUSE)
        her = Her(chat_id=next(chats), update_ids=updates)
        async with httpx.AsyncClient(base_url=serve.url, timeout=REPLY_WAIT) as client:  # a new connection
            answer = await client.post(TELEGRAM_PATH, json=her.says("salom"), headers=headers)
        answered = time.monotonic()
        answer.raise_for_status()
        deadline = answered + REPLY_WAIT
        while not (calls := [c for c in telegram.calls_to("sendMessage") if c.chat_id == her.chat_id]):
            if time.monotonic() > deadline:
                raise RuntimeError("a reply did not leave")
            await asyncio.sleep(0.001)
        where = "the leader" if answer.headers.get("x-hamroh-worker", "one") == leader else "another worker"
        found[where].append(calls[0].at - answered)
    return found


async def main(args: argparse.Namespace) -> None:
    if not args.postgres:
        print(NO_POSTGRES)
        return
    print("`hamroh serve --workers N` on PostgreSQL. Absolute figures vary by machine; compare the ratios.")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        if args.seconds > 0:
            await under_load(args, folder)
        if args.idle > 0:
            await at_rest(args, folder)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="the first is the baseline")
    parser.add_argument("--seconds", type=int, default=8, help="seconds of load per case (0: no load)")
    parser.add_argument("--connections", type=int, nargs="+", default=[50, 100])
    parser.add_argument("--channels", nargs="+", choices=CHANNELS, default=["sms"])
    parser.add_argument("--pool", type=int, default=12_000, help="distinct requests per case (default 12000)")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds at rest (0: skip)")
    parser.add_argument(
        "--replies", type=int, default=20, help="replies timed from rest, per case (default 20; 0: skip)"
    )
    parser.add_argument("--postgres", default=postgres_default(), help="a PostgreSQL server URL")
    args = parser.parse_args(argv)
    if min(args.workers) < 1 or min(args.connections) < 1:
        parser.error("workers and connections must be at least 1")
    if args.seconds > 0 and shutil.which("wrk") is None:
        parser.exit(2, NO_WRK + "\n")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse()))
