"""Inbound webhooks per second: Telegram updates and Twilio SMS posted to a real uvicorn server on loopback.

    .venv/bin/python bench/webhooks.py [--requests 1000] [--serial-requests 300] [--concurrency 1 10 100]
                                       [--one-client] [--postgres URL]

For each channel and number of concurrent senders, a fixed number of requests is posted to the app of
`api.app.create_app` (dispatcher off: only the inbound turn is measured) on SQLite and, when --postgres or
HAMROH_TEST_POSTGRES_URL gives a server, on a PostgreSQL database of its own (created and dropped).
Printed: requests/s, p50/p99 latency, answers other than 2xx (0 expected) and the server process's CPU
time per request. The baseline, measured in the same run with the same requests and the same uvicorn
settings, is a bare FastAPI endpoint that answers 200 at once: the ratios say what verifying, the turn and
the database cost. Every server runs in a process of its own (one worker), apart from the client.

The client is httpx with as many connections as senders: by default one AsyncClient of one connection per
sender. With --one-client all senders share one AsyncClient whose pool holds them all; at 100 connections
that pool costs the client milliseconds of CPU a request, so the client, not the server, is measured.

Telegram updates carry the webhook's secret header, unique update ids and text from different chats; SMS
are form-encoded as Twilio posts them, signed with the twilio SDK's RequestValidator against the
configured public URL, with unique MessageSids and different numbers. Each sender writes a short
conversation (a greeting, a language, menu choices), so first contacts and later turns are both measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    KEYS,
    NO_POSTGRES,
    SCRIPT,
    free_port,
    hamroh_env,
    percentile,
    postgres_database,
    postgres_default,
    sqlite_database,
)
from tests.fakes.telegram_api import TOKEN, Her
from tests.fakes.twilio_api import inbound_sms_form, new_sid, signed_request

TELEGRAM_PATH = "/webhooks/telegram"
SMS_PATH = "/webhooks/sms"
SECRET = "bench-webhook-secret"
PUBLIC_URL = "https://hamroh.example.org"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "bench-auth-token-0123456789abcdef"
OUR_NUMBER = "+15005550006"
MESSAGES_EACH = 5  # each sender's conversation: the first turns of SCRIPT
STARTUP_SECONDS = 60.0
CHANNELS = ("telegram", "sms")
T = TypeVar("T")


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Result:
    requests: int
    seconds: float
    latencies: list[float]
    statuses: Counter[str] = field(default_factory=Counter)
    server_cpu: float = 0.0  # seconds of CPU the server process spent meanwhile

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 0.99) * 1000

    @property
    def not_2xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if not status.startswith("2"))


# --- the servers (run in a child process: `webhooks.py --serve bare|hamroh`) --------------------------------


def server_options(port: int) -> dict[str, object]:
    """The same uvicorn settings for every server measured."""
    return {"host": "127.0.0.1", "port": port, "workers": 1, "log_level": "warning", "access_log": False}


def serve(kind: str, port: int, settings_json: str) -> None:
    import uvicorn
    from fastapi import FastAPI, Response

    from api.app import create_app
    from bot.config import Settings
    from bot.logs import configure_logging

    configure_logging("WARNING")
    if kind == "bare":
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

        async def ok() -> Response:
            return Response(status_code=200)

        for path in (TELEGRAM_PATH, SMS_PATH):
            app.add_api_route(path, ok, methods=["POST"])
        app.add_api_route("/healthz", ok, methods=["GET"])
    else:
        app = create_app(Settings(**json.loads(settings_json)), dispatch=False)
    uvicorn.run(app, **server_options(port))  # type: ignore[arg-type]


def app_settings(database_url: str, folder: Path) -> dict[str, object]:
    """Development settings with the test keys, both webhooks on, the dispatcher off."""
    return {
        "env": "development",
        "database_url": database_url,
        "var_dir": str(folder),
        **KEYS,
        "log_level": "WARNING",
        "public_url": PUBLIC_URL,
        "telegram_token": TOKEN,
        "telegram_secret": SECRET,
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_from": OUR_NUMBER,
        "dispatch_in_process": False,
    }


class Server:
    """A uvicorn server in a child process; its warnings go to a log file."""

    def __init__(self, kind: str, folder: Path, settings: dict[str, object] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"server-{self.port}.log"
        command = [sys.executable, __file__, "--serve", kind, "--port", str(self.port)]
        command += ["--settings", json.dumps(settings or {})]
        with self.log.open("wb") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                command, cwd=folder, env=hamroh_env(), stdout=log, stderr=subprocess.STDOUT
            )

    async def ready(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not start:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def cpu_seconds(self) -> float:
        """User and system CPU time of the server process so far (0 where /proc is not there)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def warnings(self) -> list[str]:
        return [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]


# --- the requests -------------------------------------------------------------------------------------------


class Senders:
    """New women for every case (numbers and chats never repeat), and update ids unique to the bot."""

    def __init__(self) -> None:
        self._women = itertools.count(1)
        self._update_ids = itertools.count(1_000_001)

    def telegram(self, count: int) -> list[Request]:
        women = [
            Her(chat_id=100_000_000 + next(self._women), update_ids=self._update_ids) for _ in range(count)
        ]
        headers = {"content-type": "application/json", "x-telegram-bot-api-secret-token": SECRET}
        return [
            Request(TELEGRAM_PATH, headers, json.dumps(her.says(text)).encode())
            for her, text in self._conversations(women, count)
        ]

    def sms(self, count: int) -> list[Request]:
        numbers = [f"+9929{next(self._women):08d}" for _ in range(count)]
        requests = []
        for number, text in self._conversations(numbers, count):
            form = inbound_sms_form(
                number, text, to=OUR_NUMBER, account_sid=ACCOUNT_SID, message_sid=new_sid()
            )
            signed = signed_request(AUTH_TOKEN, f"{PUBLIC_URL}{SMS_PATH}", form)
            requests.append(Request(SMS_PATH, dict(signed.headers), signed.body))
        return requests

    @staticmethod
    def _conversations(women: list[T], count: int) -> Iterator[tuple[T, str]]:
        """`count` messages: every woman's first message, then every woman's second, and so on."""
        people = women[: max(1, -(-count // MESSAGES_EACH))]
        for n in range(count):
            yield people[n % len(people)], SCRIPT[(n // len(people)) % len(SCRIPT)]


async def post_all(clients: Sequence[httpx.AsyncClient], requests: Sequence[Request]) -> Result:
    """Post every request, one sender per client; latency of each, and the answers by status."""
    pending = iter(requests)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()

    async def sender(client: httpx.AsyncClient) -> None:
        for request in pending:  # the senders share one iterator: each request goes once
            t0 = time.perf_counter()
            try:
                answer = await client.post(request.path, content=request.body, headers=request.headers)
                statuses[str(answer.status_code)] += 1
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(sender(client) for client in clients))
    return Result(len(requests), time.perf_counter() - started, latencies, statuses)


async def measure(
    server: Server, senders: Senders, channel: str, concurrency: int, requests: int, one_client: bool
) -> Result:
    """Warm the connections up, then post `requests` requests, `concurrency` at a time."""
    make = senders.telegram if channel == "telegram" else senders.sms
    async with contextlib.AsyncExitStack() as stack:
        if one_client:
            limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
            client = httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60)
            clients = [await stack.enter_async_context(client)] * concurrency
        else:
            limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
            clients = [
                await stack.enter_async_context(
                    httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60)
                )
                for _ in range(concurrency)
            ]
        await post_all(clients, make(max(20, concurrency)))  # warm: connections, first calls
        cpu = server.cpu_seconds()
        result = await post_all(clients, make(requests))
        result.server_cpu = server.cpu_seconds() - cpu
        return result


# --- the run ------------------------------------------------------------------------------------------------

HEADER = (
    f"{'channel':<9} {'conc':>4}  {'server':<14} {'requests':>8} {'seconds':>8} {'req/s':>8} "
    f"{'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>7} {'cpu ms/req':>10}"
)


def line(channel: str, concurrency: int, name: str, result: Result, bare: Result | None) -> str:
    figures = (
        f"{channel:<9} {concurrency:>4}  {name:<14} {result.requests:>8} {result.seconds:>8.2f} "
        f"{result.rate:>8.0f} {result.p50_ms:>8.2f} {result.p99_ms:>8.2f} {result.not_2xx:>7} "
        f"{result.server_cpu * 1000 / result.requests:>10.2f}"
    )
    if bare is not None:
        slower, later = bare.rate / result.rate, result.p50_ms / bare.p50_ms
        costlier = result.server_cpu / bare.server_cpu if bare.server_cpu else float("nan")
        figures += f"   vs bare: req/s {slower:5.1f}x fewer, p50 {later:5.1f}x, cpu {costlier:4.0f}x"
    odd = {s: n for s, n in result.statuses.items() if not s.startswith("2")}
    if odd:
        figures += f"   answers: {dict(sorted(odd.items()))}"
    return figures


@dataclass
class Run:
    """What every server is measured with."""

    cases: list[tuple[str, int, int]]  # channel, concurrency, requests
    senders: Senders
    one_client: bool
    bare: dict[tuple[str, int], Result] = field(default_factory=dict)

    async def measure(self, name: str, server: Server) -> dict[tuple[str, int], Result]:
        results: dict[tuple[str, int], Result] = {}
        try:
            await server.ready()
            for channel, concurrency, requests in self.cases:
                result = await measure(server, self.senders, channel, concurrency, requests, self.one_client)
                results[channel, concurrency] = result
                print(
                    line(channel, concurrency, name, result, self.bare.get((channel, concurrency))),
                    flush=True,
                )
        finally:
            server.stop()
        said = server.warnings()
        if said:
            print(f"{'':<15}the {name} server logged {len(said)} lines; the first: {said[0][:200]}")
        return results


async def main(args: argparse.Namespace) -> None:
    cases = [
        (channel, concurrency, args.serial_requests if concurrency == 1 else args.requests)
        for channel in CHANNELS
        for concurrency in args.concurrency
    ]
    client = "one httpx client" if args.one_client else "one httpx client of one connection per sender"
    print(
        "Inbound webhooks on uvicorn (127.0.0.1, 1 worker, its default loop and HTTP parser, log level "
        f"warning, no access log), each server in a process of its own; {client}.\n"
        "cpu ms/req: the server process's CPU per request. Ratios: bare endpoint / webhook (req/s), "
        "webhook / bare endpoint (p50 and CPU per request)."
    )
    print(HEADER)
    run = Run(cases, Senders(), args.one_client)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        run.bare = await run.measure("bare endpoint", Server("bare", folder))
        url = await sqlite_database(folder)
        await run.measure("SQLite", Server("hamroh", folder, app_settings(url, folder)))
        if args.postgres:
            async with postgres_database(args.postgres) as url:
                await run.measure("PostgreSQL", Server("hamroh", folder, app_settings(url, folder)))
        else:
            print(NO_POSTGRES)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1000, help="requests per case (default 1000)")
    parser.add_argument(
        "--serial-requests", type=int, default=300, help="requests per case with 1 sender (default 300)"
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--postgres", default=postgres_default(), help="a PostgreSQL server URL")
    parser.add_argument(
        "--one-client",
        action="store_true",
        help="all senders share one httpx client (its pool costs the client ~4 ms a request at 100)",
    )
    parser.add_argument("--serve", choices=("bare", "hamroh"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--settings", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.concurrency) < 1 or args.requests < 1 or args.serial_requests < 1:
        parser.error("concurrency and request counts must be at least 1")
    return args


if __name__ == "__main__":
    arguments = parse()
    if arguments.serve:
        serve(arguments.serve, arguments.port, arguments.settings)
    else:
        asyncio.run(main(arguments))
