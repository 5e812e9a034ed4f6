"""From an urgent SMS to a counsellor's open console: how long until the console hears of it.

    .venv/bin/python bench/escalation.py [--cases 200] [--warm 10] [--postgres URL]

A uvicorn server (127.0.0.1, one worker, a process of its own, the app of `api.app.create_app` with the
dispatcher off) serves the webhooks and the console. A logged-in counsellor's console is connected to
`GET /console/events` (server-sent events, over real HTTP, reconnecting with Last-Event-ID when a stream
ends). Then, one at a time, each of `--cases` new women sends an urgent SMS ("мард маро мекушад", or "he
beats me, I am afraid he will kill me"): a form signed as Twilio signs it, posted to /webhooks/sms. Measured
for each: the webhook's own response time (the baseline: her turn, committed), and the time from sending it
until the case's `case_opened` event reaches the console's stream. Printed: p50 and p99 of both and their
ratio, on SQLite (the listener polls the table, every 0.5 s by default) and, with --postgres or
HAMROH_TEST_POSTGRES_URL, on a PostgreSQL database of its own, created and dropped (LISTEN/NOTIFY). Also the
server's CPU while idle with the console connected, which should be next to nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.deps import SESSION_COOKIE
from bench.common import NO_POSTGRES, percentile, postgres_database, postgres_default, sqlite_database
from bench.webhooks import ACCOUNT_SID, AUTH_TOKEN, OUR_NUMBER, PUBLIC_URL, SMS_PATH, Server, app_settings
from bot.staff.passwords import hash_password
from bot.store import Staff
from bot.store.db import create_engine, transaction
from tests.fakes.twilio_api import inbound_sms_form, new_sid, signed_request

NAME, PASSWORD = "bench-counsellor", "bench password, long enough"
DANGER = ("мард маро мекушад", "he beats me, I am afraid he will kill me")
EVENT_WAIT_SECONDS = 10.0
IDLE_SECONDS = 5.0


@dataclass
class Result:
    webhook: list[float] = field(default_factory=list)  # seconds, per case
    event: list[float] = field(default_factory=list)
    lost: int = 0  # cases whose event never came
    reconnects: int = 0
    idle_cpu_alone: float = 0.0  # ms of CPU a second, no console connected
    idle_cpu_ms_per_s: float = 0.0  # the same with a console connected


@dataclass(frozen=True)
class Heard:
    at: float  # time.perf_counter() when the line arrived
    data: dict[str, object]


class Console:
    """A counsellor's console: the event stream, read as it comes, reconnecting with Last-Event-ID."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.heard: asyncio.Queue[Heard] = asyncio.Queue()
        self.connected = asyncio.Event()
        self.last_id: str | None = None
        self.connections = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            headers = {"Accept": "text/event-stream"}
            if self.last_id is not None:
                headers["Last-Event-ID"] = self.last_id
            async with self.client.stream("GET", "/console/events", headers=headers) as answer:
                if answer.status_code != 200 or "text/event-stream" not in answer.headers["content-type"]:
                    raise RuntimeError(f"the console stream answered {answer.status_code}")
                self.connections += 1
                kind, data = "", ""
                async for line in answer.aiter_lines():
                    now = time.perf_counter()
                    if line.startswith("retry:"):
                        self.connected.set()  # subscribed: the server says so once it listens
                    elif line.startswith("id: "):
                        self.last_id = line[4:]
                    elif line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        data = line[6:]
                    elif not line and kind:
                        if kind == "case":
                            self.heard.put_nowait(Heard(now, json.loads(data)))
                        kind, data = "", ""


async def add_counsellor(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with transaction(engine) as db:
            hashed = await hash_password(PASSWORD)
            db.add(Staff(name=NAME, role="counsellor", password_hash=hashed, created_at=datetime.now(UTC)))
    finally:
        await engine.dispose()


def urgent_sms(n: int) -> tuple[dict[str, str], bytes]:
    """The signed webhook of woman number `n`'s first message, which is urgent."""
    form = inbound_sms_form(
        f"+9929{n:08d}", DANGER[n % 2], to=OUR_NUMBER, account_sid=ACCOUNT_SID, message_sid=new_sid()
    )
    signed = signed_request(AUTH_TOKEN, f"{PUBLIC_URL}{SMS_PATH}", form)
    return dict(signed.headers), signed.body


async def opened_case(console: Console) -> Heard | None:
    """The next `case_opened` event of an urgent case (other events of the turn are skipped)."""
    deadline = time.perf_counter() + EVENT_WAIT_SECONDS
    while (left := deadline - time.perf_counter()) > 0:
        try:
            heard = await asyncio.wait_for(console.heard.get(), left)
        except TimeoutError:
            return None
        if heard.data.get("kind") == "case_opened" and heard.data.get("priority") == "urgent":
            return heard
    return None


@contextlib.asynccontextmanager
async def logged_in(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        answer = await client.post("/login", data={"name": NAME, "password": PASSWORD})
        token = answer.cookies.get(SESSION_COOKIE)
        if answer.status_code != 303 or not token:
            raise RuntimeError(f"could not log in: {answer.status_code}")
        # The cookie is Secure (the public address is https): sent by hand over loopback's plain HTTP.
        client.headers["Cookie"] = f"{SESSION_COOKIE}={token}"
        yield client


async def measure(server: Server, cases: int, warm: int, pause: float, rng: random.Random) -> Result:
    result = Result()
    await server.ready()
    cpu = server.cpu_seconds()
    await asyncio.sleep(IDLE_SECONDS)
    result.idle_cpu_alone = (server.cpu_seconds() - cpu) * 1000 / IDLE_SECONDS
    async with logged_in(server.url) as browser, httpx.AsyncClient(base_url=server.url, timeout=30) as twilio:
        console = Console(browser)
        console.start()
        try:
            await asyncio.wait_for(console.connected.wait(), 10)
            cpu = server.cpu_seconds()
            await asyncio.sleep(IDLE_SECONDS)
            result.idle_cpu_ms_per_s = (server.cpu_seconds() - cpu) * 1000 / IDLE_SECONDS
            for n in range(warm + cases):
                await asyncio.sleep(rng.uniform(0, pause))
                headers, body = urgent_sms(n)
                started = time.perf_counter()
                answer = await twilio.post(SMS_PATH, content=body, headers=headers)
                answered = time.perf_counter()
                if answer.status_code != 200:
                    raise RuntimeError(f"the webhook answered {answer.status_code}")
                heard = await opened_case(console)
                if n < warm:
                    continue
                result.webhook.append(answered - started)
                if heard is None:
                    result.lost += 1
                else:
                    result.event.append(heard.at - started)
            result.reconnects = console.connections - 1
        finally:
            await console.stop()
            server.stop()
    return result


HEADER = (
    f"{'database':<11} {'cases':>5}  {'webhook p50':>11} {'p99':>8}  {'event p50':>9} {'p99':>8}  "
    f"{'event/webhook p50':>17} {'p99':>6}  {'lost':>4} {'reconnects':>10}  {'idle cpu alone / console':>24}"
)


def line(name: str, result: Result) -> str:
    def ms(samples: list[float], q: float) -> float:
        return (statistics.median(samples) if q == 0.5 else percentile(samples, q)) * 1000

    hook50, hook99 = ms(result.webhook, 0.5), ms(result.webhook, 0.99)
    event50, event99 = (ms(result.event, 0.5), ms(result.event, 0.99)) if result.event else (0.0, 0.0)
    return (
        f"{name:<11} {len(result.webhook):>5}  {hook50:>8.1f} ms {hook99:>5.1f} ms  {event50:>6.1f} ms "
        f"{event99:>5.1f} ms  {event50 / hook50:>16.1f}x {event99 / hook99:>5.1f}x  {result.lost:>4} "
        f"{result.reconnects:>10}  {result.idle_cpu_alone:>8.1f} / {result.idle_cpu_ms_per_s:.1f} ms/s"
    )


async def main(args: argparse.Namespace) -> None:
    print(
        f"Urgent SMS webhook -> console event stream: {args.cases} new women one at a time (after "
        f"{args.warm} to warm up), uvicorn on 127.0.0.1 (1 worker, its own process, dispatcher off), one "
        "logged-in console connected over HTTP; a random pause of up to "
        f"{args.pause:.1f} s before each case (women do not write in step with the polling).\n"
        "webhook: the webhook's response time (baseline). event: from sending the webhook until the case's "
        "case_opened event arrives at the console. idle cpu: the server's CPU while nothing happens "
        f"({IDLE_SECONDS:.0f} s each), without a console, then with one connected."
    )
    print(HEADER)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        url = await sqlite_database(folder)
        await add_counsellor(url)
        server = Server("hamroh", folder, app_settings(url, folder))
        result = await measure(server, args.cases, args.warm, args.pause, random.Random(1))
        print(line("SQLite", result), flush=True)
        if args.postgres:
            async with postgres_database(args.postgres) as url:
                await add_counsellor(url)
                server = Server("hamroh", folder, app_settings(url, folder))
                result = await measure(server, args.cases, args.warm, args.pause, random.Random(1))
                print(line("PostgreSQL", result), flush=True)
        else:
            print(NO_POSTGRES)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=200, help="urgent cases measured (default 200)")
    parser.add_argument("--warm", type=int, default=10, help="cases sent first, not measured (default 10)")
    parser.add_argument(
        "--pause", type=float, default=0.5, help="at most this many seconds between cases (default 0.5)"
    )
    parser.add_argument("--postgres", default=postgres_default(), help="a PostgreSQL server URL")
    args = parser.parse_args(argv)
    if args.cases < 1 or args.warm < 0:
        parser.error("--cases must be at least 1 and --warm at least 0")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse()))
