"""Inbound webhooks under load: CPU per request beside a bare endpoint, req/s, p50/p99, and a fixed rate.

    .venv/bin/python bench/webhooks.py [--seconds 8] [--connections 1 50 100] [--channels sms telegram]
                                       [--postgres URL] [--no-sqlite] [--rate-share 0.7] [--rounds 1]

Load comes from `wrk` (Debian: `apt-get install -y wrk`), so the client is not the ceiling (an httpx client
tops out near 1,000-1,500 requests/s); without it the script says how to install it and stops. wrk runs a
small Lua script that cycles through a file of requests written beforehand: every SMS is signed with the
twilio SDK's RequestValidator against the configured public URL and has a MessageSid of its own, every
Telegram update an update id of its own, so each request is a new message and the duplicate check never
answers early (a case that sends more requests than its file holds says so). Each sender writes a short
conversation (a greeting, a language, menu choices): first contacts and later turns are both measured.

Servers, each a uvicorn of its own (127.0.0.1, one worker, the same settings): the baseline, a bare FastAPI
endpoint that reads the same form (`request.form()`) and answers empty TwiML (for Telegram: reads the JSON
and answers `{"ok": true}`); then the app of `api.app.create_app` (dispatcher off: only the turn) on
PostgreSQL (--postgres or HAMROH_TEST_POSTGRES_URL; a database of its own, created and dropped) and SQLite.
All the servers run at once, idle but for the one measured. Each case (a channel and a number of
connections) runs on the baseline and then at once on each webhook server, and `--rounds` repeats them
all: on a shared machine the load drifts over minutes, so a ratio compares runs seconds apart.
Printed per run: requests/s, p50/p99 as wrk saw them, answers other than 2xx/3xx (0 expected), the server
process's CPU per request (from /proc, over the run) and that CPU as a multiple of the baseline's run just
before; then, per case, the medians over the rounds.

Then the fixed arrival rate: requests sent on a schedule by an asyncio sender of this script, each on a
free keep-alive connection, latency counted from each request's scheduled time (so a late answer cannot
hide the queue behind it: no coordinated omission). Two capacities are measured: wrk's (the best req/s of
the webhook above), and the paced one (the rate at which the server's process would be busy all the time
at what a request costs it when requests arrive one by one: more than wrk's, which arrive together; found
by probing). Then a run at `--rate-share` (70%) of each, with the baseline run at the same rate just before:
what the machine alone does to a request that arrives on its own (waking an idle process, on a virtual
machine above all, costs it CPU and time that wrk's back-to-back requests never pay). Printed: p50/p99, p99
as a multiple of the server's p50 at 1 sender under wrk (goal: at most 5), the webhook's p99 as a multiple
of the baseline's at that rate, and how busy the machine was (all its cores: servers, database, sender).

With `--before PATH` (a checkout of an earlier commit, its translations compiled), that checkout's servers
run too, each case right after this one's, on databases of their own: a change is measured before and after
within each round.

Absolute figures vary by machine and by what else runs on it; the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import os
import re
import shutil
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
from fastapi import Request

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    KEYS,
    NO_POSTGRES,
    SCRIPT,
    busy_share,
    free_port,
    hamroh_env,
    machine_cpu,
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
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
MESSAGES_EACH = 5  # each sender's conversation: the first turns of SCRIPT
STARTUP_SECONDS = 60.0
WARM_SECONDS = 2
PROBE_SECONDS = 4.0  # each run of the search for the paced capacity
PROBES = 4  # runs of that search at most
CHANNELS = ("sms", "telegram")
ERROR_LINE = re.compile(
    r"^(?!Traceback|ERROR|WARNING|INFO)[\w.]+(:|$)"
)  # a traceback's last line: the exception
NO_WRK = "wrk is not installed: `apt-get install -y wrk` (Debian's package), then run this again."
T = TypeVar("T")

# Each wrk thread takes every n-th line of the file (a line: the signature, a tab, the body) and cycles
# through its share; `done` prints what wrk measured as one JSON line.
LUA = r"""
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

local requests = {}
local next_one = 0
function init(args)
  local file, path, threads, content_type = args[1], args[2], tonumber(args[3]), args[4]
  local fixed_name, fixed_value, signed_name = args[5], args[6], args[7]
  local headers = {["Content-Type"] = content_type}
  if fixed_name ~= "" then headers[fixed_name] = fixed_value end
  local n = 0
  for line in io.lines(file) do
    if n % threads == id then
      local signature, body = line:match("^([^\t]*)\t(.*)$")
      if signed_name ~= "" then headers[signed_name] = signature end
      requests[#requests + 1] = wrk.format("POST", path, headers, body)
    end
    n = n + 1
  end
end

function request()
  next_one = next_one % #requests + 1
  return requests[next_one]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "us": %d, "bad_status": %d, "socket_errors": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Post:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    failed: int  # answers of 4xx/5xx and socket errors
    server_cpu: float = 0.0  # seconds of CPU the server process spent meanwhile
    wrapped: bool = False  # more requests went than the file held: some were duplicates
    sender_cpu: float = 0.0  # seconds of CPU the fixed-rate sender (this process) spent
    machine_busy: float = 0.0  # the share of the machine's CPU (all cores) in use during the fixed rate

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms(self) -> float:
        return self.server_cpu * 1000 / max(1, self.requests)


# --- the servers (run in a child process: `webhooks.py --serve bare|hamroh`) --------------------------------


def server_options(port: int) -> dict[str, object]:
    """The same uvicorn settings for every server measured."""
    return {"host": "127.0.0.1", "port": port, "workers": 1, "log_level": "warning", "access_log": False}


def serve(kind: str, port: int, settings_json: str) -> None:
    import uvicorn
    from fastapi import FastAPI, Response
    from fastapi.responses import JSONResponse

    from api.app import create_app
    from api.heap import settle
    from bot.config import Settings
    from bot.logs import configure_logging

    configure_logging("WARNING")
    if kind == "bare":
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

        async def sms(request: Request) -> Response:
            await request.form()
            return Response(EMPTY_TWIML, media_type="text/xml")

        async def telegram(request: Request) -> Response:
            await request.json()
            return JSONResponse({"ok": True})

        async def ok() -> Response:
            return Response(status_code=200)

        app.add_api_route(SMS_PATH, sms, methods=["POST"])
        app.add_api_route(TELEGRAM_PATH, telegram, methods=["POST"])
        app.add_api_route("/healthz", ok, methods=["GET"])
    else:
        app = create_app(Settings(**json.loads(settings_json)), dispatch=False)
    settle()  # as `hamroh serve` does, for both servers
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

    def __init__(
        self, kind: str, folder: Path, settings: dict[str, object] | None = None, checkout: Path | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"server-{self.port}.log"
        script = __file__ if checkout is None else str(checkout / "bench" / "webhooks.py")
        command = [sys.executable, script, "--serve", kind, "--port", str(self.port)]
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
    """New women for every batch (numbers and chats never repeat), and update ids unique to the bot."""

    def __init__(self) -> None:
        self._women = itertools.count(1)
        self._update_ids = itertools.count(1_000_001)

    def make(self, channel: str, count: int) -> list[Post]:
        return self.telegram(count) if channel == "telegram" else self.sms(count)

    def telegram(self, count: int) -> list[Post]:
        women = [
            Her(chat_id=100_000_000 + next(self._women), update_ids=self._update_ids)
            for _ in range(self._people(count))
        ]
        headers = {"content-type": "application/json", "x-telegram-bot-api-secret-token": SECRET}
        return [
            Post(TELEGRAM_PATH, headers, json.dumps(her.says(text)).encode())
            for her, text in self._conversations(women, count)
        ]

    def sms(self, count: int) -> list[Post]:
        numbers = [f"+9929{next(self._women):08d}" for _ in range(self._people(count))]
        requests = []
        for number, text in self._conversations(numbers, count):
            form = inbound_sms_form(
                number, text, to=OUR_NUMBER, account_sid=ACCOUNT_SID, message_sid=new_sid()
            )
            signed = signed_request(AUTH_TOKEN, f"{PUBLIC_URL}{SMS_PATH}", form)
            requests.append(Post(SMS_PATH, dict(signed.headers), signed.body))
        return requests

    @staticmethod
    def _people(count: int) -> int:
        return max(1, -(-count // MESSAGES_EACH))

    @staticmethod
    def _conversations(women: list[T], count: int) -> Iterator[tuple[T, str]]:
        """`count` messages: every woman's first message, then every woman's second, and so on."""
        for n in range(count):
            yield women[n % len(women)], SCRIPT[(n // len(women)) % len(SCRIPT)]


def write_requests(requests: Sequence[Post], path: Path) -> None:
    """One request a line for the Lua script: the Twilio signature (or nothing), a tab, the body."""
    with path.open("w", encoding="ascii") as out:
        for request in requests:
            body = request.body.decode("ascii")  # form-encoded or JSON with ASCII escapes: no tab, no newline
            out.write(f"{request.headers.get('x-twilio-signature', '')}\t{body}\n")


# --- wrk ----------------------------------------------------------------------------------------------------


def wrk_command(
    url: str, channel: str, connections: int, seconds: int, lines: Path, script: Path
) -> list[str]:
    threads = min(2, connections)
    path = SMS_PATH if channel == "sms" else TELEGRAM_PATH
    if channel == "sms":
        extra = ["application/x-www-form-urlencoded", "", "", "X-Twilio-Signature"]
    else:
        extra = ["application/json", "X-Telegram-Bot-Api-Secret-Token", SECRET, ""]
    return [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        url,
        "--",
        str(lines),
        path,
        str(threads),
        *extra,
    ]


async def run_wrk(
    server: Server,
    channel: str,
    connections: int,
    seconds: int,
    requests: Sequence[Post],
    folder: Path,
    *,
    baseline: bool = False,
) -> Result:
    """One case under wrk (the baseline's requests may repeat: it never looks at them)."""
    lines, script = folder / "requests.txt", folder / "post.lua"
    script.write_text(LUA)
    write_requests(requests, lines)
    command = wrk_command(server.url, channel, connections, seconds, lines, script)
    cpu = server.cpu_seconds()
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, check=False)
    used = server.cpu_seconds() - cpu
    report = next((ln for ln in done.stdout.splitlines() if ln.startswith("{")), None)
    if done.returncode != 0 or report is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()[:500]}")
    figures = json.loads(report)
    return Result(
        requests=figures["requests"],
        seconds=figures["us"] / 1e6,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        failed=figures["bad_status"] + figures["socket_errors"],
        server_cpu=used,
        wrapped=figures["requests"] > len(requests) and not baseline,
    )


# --- the fixed arrival rate ---------------------------------------------------------------------------------


def raw_request(request: Post, port: int) -> bytes:
    head = [f"POST {request.path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    head += [f"{name}: {value}" for name, value in request.headers.items()]
    head.append(f"Content-Length: {len(request.body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + request.body


class Exchange(asyncio.Protocol):
    """One keep-alive connection of the fixed-rate sender: a request out, its whole answer in. A protocol
    rather than streams: the sender shares the cores with the server and the database, so it must cost
    them as little as it can."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[str] | None = None
        self.buffer = b""
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError("closed"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head, sep, body = self.buffer.partition(b"\r\n\r\n")
        if not sep or self.answer is None:
            return
        length = 0
        for header in head.split(b"\r\n")[1:]:
            name, _, value = header.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(body) >= length:
            self.buffer = body[length:]
            self.answer.set_result(head.split(b" ", 2)[1].decode())

    async def send(self, raw: bytes) -> str:
        """Send one request; its status code once the answer is whole."""
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        try:
            return await self.answer
        finally:
            self.answer = None


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection in this process while it sends on a schedule: a full collection of its heap
    (every request of the run, made beforehand) took 110-130 ms here, and every request due meanwhile was
    counted that much late, as if the server had kept it waiting."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


async def fixed_rate(server: Server, requests: Sequence[Post], rate: float) -> Result:
    """Send each request at its scheduled time (`rate` a second) on a free keep-alive connection (a new
    one when none is free); each latency runs from the scheduled time to the end of the answer."""
    loop = asyncio.get_running_loop()
    idle: list[Exchange] = []
    opened: list[Exchange] = []
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    raws = [raw_request(request, server.port) for request in requests]

    async def send(raw: bytes, at: float) -> None:
        # A kept-alive connection the server closed meanwhile (idle past its keep-alive) is replaced once;
        # a new connection that fails counts as a failed request.
        for reused in (bool(idle), False):
            if reused:
                connection = idle.pop()
                if connection.closed:
                    continue
            else:
                _, connection = await loop.create_connection(Exchange, "127.0.0.1", server.port)
                opened.append(connection)
            try:
                status = await connection.send(raw)
            except (ConnectionError, IndexError, ValueError):
                if reused:
                    continue
                status = "closed"
            latencies.append(loop.time() - at)
            statuses[status] += 1
            if status != "closed" and not connection.closed:
                idle.append(connection)
            return

    cpu = server.cpu_seconds()
    ours = time.process_time()
    machine = machine_cpu()
    with collector_paused():
        start = loop.time() + 0.1
        tasks = []
        for n, raw in enumerate(raws):
            at = start + n / rate
            if (wait := at - loop.time()) > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(send(raw, at)))
        await asyncio.gather(*tasks)
        seconds = loop.time() - start
    used = server.cpu_seconds() - cpu
    sender_cpu = time.process_time() - ours
    machine_busy = busy_share(machine, machine_cpu())
    for connection in opened:
        if connection.transport is not None:
            connection.transport.close()
    failed = sum(n for status, n in statuses.items() if not status.startswith(("2", "3")))
    return Result(
        requests=len(requests),
        seconds=seconds,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        failed=failed,
        server_cpu=used,
        sender_cpu=sender_cpu,
        machine_busy=machine_busy,
    )


def fixed_line(channel: str, name: str, rate: float, basis: str, result: Result, single: float | None) -> str:
    """One fixed-rate run, as printed."""
    versus = f", p99 = {result.p99_ms / single:.1f}x p50 at 1 sender" if single else ""
    return (
        f"{channel:<9} fixed  {name:<17} {rate:.0f}/s ({basis}) for {result.seconds:.1f} s: "
        f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms{versus}; {result.failed} failed, "
        f"cpu {result.cpu_ms:.3f} ms/req; the sender used {result.sender_cpu / result.seconds:.0%} of a "
        f"core, the machine {result.machine_busy:.0%} of its {os.cpu_count()} cores"
    )


# --- the run ------------------------------------------------------------------------------------------------

HEADER = (
    f"{'channel':<9} {'conns':>5}  {'server':<17} {'requests':>8} {'req/s':>7} {'p50 ms':>8} "
    f"{'p99 ms':>8} {'failed':>6} {'cpu ms/req':>10} {'cpu / baseline':>14}"
)


def line(channel: str, connections: int, name: str, result: Result, bare: Result | None) -> str:
    ratio = f"{result.cpu_ms / bare.cpu_ms:13.1f}x" if bare is not None and bare.cpu_ms else f"{'':>14}"
    figures = (
        f"{channel:<9} {connections:>5}  {name:<17} {result.requests:>8} {result.rate:>7.0f} "
        f"{result.p50_ms:>8.2f} {result.p99_ms:>8.2f} {result.failed:>6} {result.cpu_ms:>10.3f} {ratio}"
    )
    if result.wrapped:
        figures += "   (ran past its requests: some were duplicates; raise --pool)"
    return figures


@dataclass
class Run:
    """What every server is measured with: in rounds, each case run on the baseline and then at once on
    each webhook server, so a ratio compares runs seconds apart (the load of a shared machine drifts over
    minutes); the summary gives each case's median over the rounds."""

    args: argparse.Namespace
    folder: Path
    senders: Senders = field(default_factory=Senders)
    results: dict[tuple[str, str, int], list[Result]] = field(default_factory=dict)
    ratios: dict[tuple[str, str, int], list[float]] = field(default_factory=dict)
    summary: list[str] = field(default_factory=list)

    async def measure(self, servers: dict[str, Server]) -> None:
        """Every round, channel and number of connections on every server (the first: the baseline)."""
        args = self.args
        bare_name = next(iter(servers))
        try:
            await asyncio.gather(*(server.ready() for server in servers.values()))
            for round_number in range(1, args.rounds + 1):
                if args.rounds > 1:
                    print(f"round {round_number} of {args.rounds}", flush=True)
                for channel in args.channels:
                    for connections in args.connections:
                        bare: Result | None = None
                        for name, server in servers.items():
                            result = await self.one_case(server, channel, connections, name == bare_name)
                            self.results.setdefault((name, channel, connections), []).append(result)
                            if name == bare_name:
                                bare = result
                            elif bare is not None and bare.cpu_ms:
                                ratio = result.cpu_ms / bare.cpu_ms
                                self.ratios.setdefault((name, channel, connections), []).append(ratio)
                            beside = None if name == bare_name else bare
                            print(line(channel, connections, name, result, beside), flush=True)
            for name, server in list(servers.items())[1:]:
                if args.rate_share > 0:
                    for channel in args.channels:
                        await self.fixed(name, server, channel, bare_name, servers[bare_name])
        finally:
            for server in servers.values():
                server.stop()
        for name, server in servers.items():
            said = server.warnings()
            if said:
                errors = Counter(ln[:80] for ln in said if ERROR_LINE.match(ln))
                print(f"{'':<17}the {name} server logged {len(said)} lines; exceptions: {dict(errors)}")

    async def one_case(self, server: Server, channel: str, connections: int, baseline: bool) -> Result:
        args = self.args
        pool = 2000 if baseline else args.pool  # the baseline never reads them: they may repeat
        warm = self.senders.make(channel, 2000)
        await run_wrk(server, channel, connections, WARM_SECONDS, warm, self.folder)
        requests = self.senders.make(channel, pool)
        return await run_wrk(
            server, channel, connections, args.seconds, requests, self.folder, baseline=baseline
        )

    def medians(self) -> list[str]:
        """Each webhook case over the rounds: the median CPU per request, and the median (and range) of
        its ratio to the baseline run beside it."""
        said = []
        for (name, channel, connections), ratios in self.ratios.items():
            cpu = statistics.median(r.cpu_ms for r in self.results[name, channel, connections])
            rate = statistics.median(r.rate for r in self.results[name, channel, connections])
            spread = f" (rounds {min(ratios):.1f}-{max(ratios):.1f})" if len(ratios) > 1 else ""
            said.append(
                f"{channel:<9} {connections:>5}  {name:<17} {rate:>7.0f} req/s {cpu:>7.3f} cpu ms/req "
                f"{statistics.median(ratios):>5.1f}x the baseline{spread}"
            )
        return said

    async def fixed(self, name: str, server: Server, channel: str, bare_name: str, bare: Server) -> None:
        """The fixed arrival rate at `--rate-share` of each capacity: wrk's, and the paced one; at each rate
        the bare endpoint first, for what the machine alone does to a request that arrives on its own."""
        found = {c: self.results[name, channel, c] for c in self.args.connections}
        closed = max(result.rate for results in found.values() for result in results)
        single = self.single_p50(name, channel)
        paced = await self.paced_capacity(name, server, channel, closed)
        for basis, capacity in ((f"wrk's {closed:.0f}/s", closed), (f"the paced {paced:.0f}/s", paced)):
            rate = capacity * self.args.rate_share
            floor = await self.at_rate(bare, channel, rate, self.args.rate_seconds)
            floor_single = self.single_p50(bare_name, channel)
            self.say(fixed_line(channel, bare_name, rate, f"{name}'s next", floor, floor_single))
            result = await self.at_rate(server, channel, rate, self.args.rate_seconds)
            said = fixed_line(channel, name, rate, f"{self.args.rate_share:.0%} of {basis}", result, single)
            self.say(f"{said}; p99 {result.p99_ms / floor.p99_ms:.1f}x the baseline's at this rate")

    def single_p50(self, name: str, channel: str) -> float | None:
        """The server's median p50 under wrk with 1 connection, if that case ran."""
        results = self.results.get((name, channel, 1))
        return statistics.median(r.p50_ms for r in results) if results else None

    async def paced_capacity(self, name: str, server: Server, channel: str, closed: float) -> float:
        """The rate at which the server's process would be busy all the time when requests arrive one by
        one, as webhooks do: 1 / its CPU per request at 70% of that rate. wrk's connections each wait for
        an answer before sending again, so its requests arrive together and the server handles them
        together, cheaper each: 70% of wrk's capacity can keep the process busy all the time. A request's
        cost rises as the rate falls (more of them find the process idle and wake it), so the rate is
        found by probing: from 70% of wrk's capacity, each probe runs at 70% of the capacity the last one's
        cost implies, until two agree within 5%. The process's CPU includes its other threads (SQLite's
        commits), so on SQLite the capacity is if anything low."""
        rate = closed * self.args.rate_share
        probes = []
        for _ in range(PROBES):
            result = await self.at_rate(server, channel, rate, PROBE_SECONDS)
            capacity = 1000 / result.cpu_ms if result.cpu_ms else closed
            probes.append(f"{rate:.0f}/s: {result.cpu_ms:.3f} ms")
            target = capacity * self.args.rate_share
            if abs(target - rate) <= 0.05 * rate:
                break
            rate = target
        self.say(
            f"{channel:<9} paced  {name:<17} capacity {capacity:.0f}/s ({capacity / closed:.0%} of wrk's "
            f"{closed:.0f}/s): 1 / the CPU a request sent on its own costs the server; probes of "
            f"{PROBE_SECONDS:g} s, the rate then its CPU a request: {', '.join(probes)}"
        )
        return capacity

    async def at_rate(self, server: Server, channel: str, rate: float, seconds: float) -> Result:
        """New messages sent on a schedule at `rate` a second for about `seconds` (50 at least)."""
        count = max(50, round(rate * seconds))
        return await fixed_rate(server, self.senders.make(channel, count), rate)

    def say(self, said: str) -> None:
        """A fixed-rate figure: printed now, and again in the summary at the end."""
        print(said, flush=True)
        self.summary.append(said)


async def main(args: argparse.Namespace) -> None:
    print(
        "Inbound webhooks on uvicorn (127.0.0.1, 1 worker, its default loop and HTTP parser, log level "
        "warning, no access log), each server in a process of its own; load from wrk, "
        f"{args.seconds} s a case after {WARM_SECONDS} s of warm-up, every request a new message; "
        f"{args.rounds} round(s), each case on the baseline and then on each webhook server.\n"
        "baseline: a bare FastAPI endpoint that reads the form (JSON for Telegram) and answers empty TwiML "
        "(ok). cpu ms/req: the server process's CPU per request; cpu / baseline: that, over the baseline's "
        "in the run just before.\nAbsolute figures vary by machine; compare the ratios."
    )
    print(HEADER)
    with tempfile.TemporaryDirectory() as name:
        run = Run(args, Path(name))
        async with contextlib.AsyncExitStack() as stack:
            servers = {"baseline": Server("bare", run.folder)}
            checkouts = {"": None, " before": args.before}
            if args.postgres:
                for said, checkout in checkouts.items():
                    if said and checkout is None:
                        continue
                    url = await stack.enter_async_context(postgres_database(args.postgres))
                    settings = app_settings(url, run.folder)
                    servers[f"PostgreSQL{said}"] = Server("hamroh", run.folder, settings, checkout)
            else:
                print(NO_POSTGRES)
            if args.sqlite:
                for said, checkout in checkouts.items():
                    if said and checkout is None:
                        continue
                    url = await sqlite_database(run.folder, f"bench{said.strip()}.db")
                    settings = app_settings(url, run.folder)
                    servers[f"SQLite{said}"] = Server("hamroh", run.folder, settings, checkout)
            await run.measure(servers)
    print("\nMedians over the rounds (goal: cpu/baseline at most 10x):")
    for said in run.medians():
        print(said)
    if run.summary:
        print("\nFixed arrival rate (goal: p99 at most 5x the p50 at 1 sender):")
        for said in run.summary:
            print(said)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=8, help="seconds of load per case (default 8)")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 50, 100])
    parser.add_argument("--channels", nargs="+", choices=CHANNELS, default=list(CHANNELS))
    parser.add_argument(
        "--pool", type=int, default=12_000, help="distinct webhook requests per case (default 12000)"
    )
    parser.add_argument("--postgres", default=postgres_default(), help="a PostgreSQL server URL")
    parser.add_argument("--no-sqlite", dest="sqlite", action="store_false", help="measure PostgreSQL only")
    parser.add_argument(
        "--rate-share", type=float, default=0.7, help="fixed arrival rate, share of capacity (0: skip)"
    )
    parser.add_argument("--rate-seconds", type=float, default=10.0, help="length of the fixed-rate run")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of every case (default 1)")
    parser.add_argument(
        "--before",
        type=Path,
        help="a checkout of an earlier commit: its servers are measured too, beside this one's, each round",
    )
    parser.add_argument("--serve", choices=("bare", "hamroh"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--settings", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.connections) < 1 or args.seconds < 1 or args.pool < 1 or args.rounds < 1:
        parser.error("connections, seconds, --pool and --rounds must be at least 1")
    if not args.serve and shutil.which("wrk") is None:
        parser.exit(2, NO_WRK + "\n")
    return args


if __name__ == "__main__":
    arguments = parse()
    if arguments.serve:
        serve(arguments.serve, arguments.port, arguments.settings)
    else:
        asyncio.run(main(arguments))
