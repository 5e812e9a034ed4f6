"""Inbound messages under faults of the database and of the sending side, as women would live them.

    .venv/bin/python bench/faults.py [--quick] [--messages 1000] [--rate 8] [--pause 30] [--freeze 30]
                                     [--hold 10] [--turn-limit 8] [--connections 40] [--give-up 60]
                                     [--postgres URL]

A real `hamroh serve` (webhooks only) and two `hamroh dispatch` processes on a PostgreSQL database of
their own, all three through a TCP proxy in front of it (tests/fakes/db_proxy.py), sending to the fake
Bot API of tests/fakes. Women write at `--rate` messages a second, each from a chat of her own, as
Telegram would post them (at most `--connections` at once): a webhook answered other than 200 is posted
again a second later, until `--give-up` seconds after the first try. Faults, one after another with
inbound flowing between them:
- the database paused (every byte held, both ways) for `--pause` seconds: webhooks must answer 503
  within `--turn-limit` (HAMROH_TURN_TIMEOUT_SECONDS), and the messages land once it resumes;
- every open connection reset (RST), then the next connection writing to the outbox reset, then all
  again, and so on: 5 resets in all, spread over the run;
- the active dispatcher stopped (SIGSTOP) for `--freeze` seconds, then continued;
- the active dispatcher killed (SIGKILL) twice, and started again each time as the new standby.
Printed: messages lost (accepted and never answered, or never accepted), replies received twice (in
flight at a fault, counted in doubt), the longest time to a reply, the 503s answered (each posted again),
how long webhooks took to answer during the pause, and for each fault the time until a message left
again (takeover; the sender's hold is `--hold`, HAMROH_DISPATCH_SENDER_HOLD_SECONDS).
`--quick`: 200 messages at 6 a second, a 5 s pause and freeze, a 2 s hold and turn limit (under a minute;
the full run takes under 3 minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import KEYS, free_port, hamroh_env, postgres_database, postgres_default
from bot.channels.telegram import WEBHOOK_PATH
from tests.fakes.db_proxy import DatabaseProxy
from tests.fakes.telegram_api import Call, FakeTelegram, Her

SECRET = "faults-bench-secret"
FIRST_CHAT = 300_000
FULL = {"messages": 1000, "rate": 8.0, "pause": 30.0, "freeze": 30.0, "hold": 10.0, "turn_limit": 8.0}
QUICK = {"messages": 200, "rate": 6.0, "pause": 5.0, "freeze": 5.0, "hold": 2.0, "turn_limit": 2.0}
OUTBOX_WRITE = b"UPDATE outbox"  # claiming a row, or recording what its send did


@dataclass
class Dispatchers:
    """The `hamroh dispatch` processes, which one is active, and the faults done to them."""

    env: dict[str, str]
    folder: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def start(self) -> None:
        log = self.folder / f"dispatch-{len(self.logs)}.log"
        with log.open("ab") as out:
            command = [sys.executable, "-m", "bot.cli", "dispatch"]
            self.processes.append(subprocess.Popen(command, env=self.env, stdout=out, stderr=out))
        self.logs.append(log)

    def active(self) -> subprocess.Popen[bytes] | None:
        """The live process whose latest word about the lock is that it holds it."""
        latest: tuple[str, subprocess.Popen[bytes]] | None = None
        for process, log in zip(self.processes, self.logs, strict=True):
            if process.poll() is not None:
                continue
            said = [
                line for line in log.read_text().splitlines() if "active sender" in line or "lost the" in line
            ]
            if said and "active sender" in said[-1] and (latest is None or said[-1] > latest[0]):
                latest = (said[-1], process)
        return latest[1] if latest else None

    def all_started(self) -> bool:
        """Whether every live process has started dispatching (so one is waiting for the lock)."""
        return all(
            "running; waiting for" in log.read_text()
            for process, log in zip(self.processes, self.logs, strict=True)
            if process.poll() is None
        )

    async def settled(self) -> subprocess.Popen[bytes] | None:
        """The active process once every live one has started and one holds the lock (a minute at most)."""
        for _ in range(600):
            active = self.active()
            if active is not None and self.all_started():
                return active
            await asyncio.sleep(0.1)
        return self.active()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            process.wait(timeout=30)


@dataclass
class Run:
    started: float = 0.0  # when the first message was posted
    first_try: dict[int, float] = field(default_factory=dict)  # chat -> when her message was first posted
    posted: dict[int, float] = field(default_factory=dict)  # chat -> when her message was accepted
    never_accepted: set[int] = field(default_factory=set)
    answers: list[tuple[float, float, int]] = field(default_factory=list)  # posted at, took, status (0: none)
    faults: list[tuple[str, float]] = field(default_factory=list)
    paused: tuple[float, float] | None = None
    resets: int = 0  # connections reset by the proxy

    def count(self, status: int) -> int:
        return sum(1 for _, _, s in self.answers if s == status)


def serve(env: dict[str, str], port: int, folder: Path) -> subprocess.Popen[bytes]:
    with (folder / "serve.log").open("ab") as out:
        command = [sys.executable, "-m", "bot.cli", "serve"]
        return subprocess.Popen(command, env=env | {"HAMROH_PORT": str(port)}, stdout=out, stderr=out)


async def post_messages(url: str, args: argparse.Namespace, run: Run) -> None:
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    # At most `--connections` posts at once, as Telegram's webhook max_connections; a post is timed from
    # when it has one, so a wait for a free connection is not counted as the webhook's.
    connections = asyncio.Semaphore(args.connections)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def one(n: int) -> None:
            chat = FIRST_CHAT + n
            her = Her(chat_id=chat, update_ids=iter(range(chat * 10, chat * 10 + 10)))
            update = her.says("salom")
            run.first_try[chat] = time.monotonic()
            while time.monotonic() < run.first_try[chat] + args.give_up:  # as Telegram: again until 200
                async with connections:
                    sent = time.monotonic()
                    status = 0
                    with contextlib.suppress(httpx.HTTPError):
                        status = (await client.post(WEBHOOK_PATH, json=update, headers=headers)).status_code
                    run.answers.append((sent, time.monotonic() - sent, status))
                if status == 200:
                    run.posted[chat] = time.monotonic()
                    return
                await asyncio.sleep(1)
            run.never_accepted.add(chat)

        tasks = []
        run.started = time.monotonic()
        for n in range(args.messages):
            tasks.append(asyncio.create_task(one(n)))
            await asyncio.sleep(1 / args.rate)
        await asyncio.gather(*tasks)


async def faults(dispatchers: Dispatchers, proxy: DatabaseProxy, args: argparse.Namespace, run: Run) -> None:
    """The faults one after another, with a 24th of the run between them for inbound to flow."""
    gap = args.messages / args.rate / 24
    resets = 0

    async def reset() -> None:
        nonlocal resets
        resets += 1
        if resets % 2:
            run.faults.append((f"reset {resets}: every connection", time.monotonic()))
            await asyncio.to_thread(proxy.reset_all)
        else:
            before = proxy.resets
            proxy.reset_on(OUTBOX_WRITE)
            for _ in range(round(gap * 10)):  # when it happens, for the takeover
                if proxy.resets > before:
                    break
                await asyncio.sleep(0.1)
            run.faults.append((f"reset {resets}: the next outbox write", time.monotonic()))

    async def kill() -> None:
        killed = await dispatchers.settled()  # a standby still starting could not take over
        if killed is not None:
            killed.kill()
            run.faults.append(("kill -9", time.monotonic()))
            dispatchers.start()

    async def pause() -> None:
        proxy.pause()
        paused = time.monotonic()
        run.faults.append(("database paused", paused))
        await asyncio.sleep(args.pause)
        proxy.resume()
        run.paused = (paused, time.monotonic())
        run.faults.append(("database resumed", time.monotonic()))

    async def freeze() -> None:
        frozen = await dispatchers.settled()
        if frozen is not None:
            os.kill(frozen.pid, signal.SIGSTOP)
            run.faults.append(("sender frozen", time.monotonic()))
            await asyncio.sleep(args.freeze)
            os.kill(frozen.pid, signal.SIGCONT)

    # The freeze between the kills gives the dispatcher started after the first kill time to start.
    for step in (pause, reset, kill, freeze, reset, kill, reset, reset, reset):
        await asyncio.sleep(gap)
        await step()


async def ready(port: int, server: subprocess.Popen[bytes], dispatchers: Dispatchers) -> None:
    """Wait until the server answers /healthz and one dispatcher holds the sender lock."""
    async with httpx.AsyncClient() as probe:
        for _ in range(1200):
            if server.poll() is not None:
                raise RuntimeError("hamroh serve stopped")
            with contextlib.suppress(httpx.HTTPError):
                answer = await probe.get(f"http://127.0.0.1:{port}/healthz")
                if answer.status_code == 200 and dispatchers.active() is not None:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError("not ready in 2 minutes")


async def bench(args: argparse.Namespace, url: str, folder: Path) -> None:
    with FakeTelegram() as fake, DatabaseProxy.to(url) as proxy:
        env = hamroh_env() | {
            "HAMROH_DATABASE_URL": proxy.url,
            "HAMROH_VAR_DIR": str(folder),
            "HAMROH_ENCRYPTION_KEY": KEYS["encryption_key"],
            "HAMROH_HASH_KEY": KEYS["hash_key"],
            "HAMROH_TELEGRAM_TOKEN": fake.token,
            "HAMROH_TELEGRAM_SECRET": SECRET,
            "HAMROH_TELEGRAM_API_URL": fake.api_url,
            "HAMROH_DISPATCH_IN_PROCESS": "false",
            "HAMROH_DISPATCH_SENDER_HOLD_SECONDS": str(args.hold),
            "HAMROH_TURN_TIMEOUT_SECONDS": str(args.turn_limit),
            "HAMROH_TELEGRAM_CHAT_MESSAGES_PER_SECOND": "1000",
        }
        port = free_port()
        server = serve(env, port, folder)
        dispatchers = Dispatchers(env, folder)
        dispatchers.start()
        dispatchers.start()
        run = Run()
        try:
            begun = time.monotonic()
            await ready(port, server, dispatchers)
            print(f"serve and two dispatchers ready in {time.monotonic() - begun:.1f} s", flush=True)
            await asyncio.gather(
                post_messages(f"http://127.0.0.1:{port}", args, run), faults(dispatchers, proxy, args, run)
            )
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                reached = {c.chat_id for c in fake.calls_to("sendMessage") if c.status == 200}
                if all(chat in reached for chat in run.posted):
                    break
                await asyncio.sleep(0.5)
            print(f"replies done at {time.monotonic() - run.started:.1f} s", flush=True)
        finally:
            dispatchers.stop()
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
            run.resets = proxy.resets
        calls = [c for c in fake.calls_to("sendMessage") if c.status == 200]
    report(args, run, calls)


def report(args: argparse.Namespace, run: Run, calls: list[Call]) -> None:
    first: dict[int, float] = {}
    for call in sorted(calls, key=lambda c: c.at):
        chat = int(call.chat_id or 0)
        if chat in run.posted and call.at >= run.first_try[chat]:  # a turn answered 503 may have landed
            first.setdefault(chat, call.at)
    unanswered = [chat for chat in run.posted if chat not in first]
    twice = sum(1 for n in Counter((c.chat_id, c.text) for c in calls).values() if n > 1)
    waits = [(first[chat] - run.posted[chat], run.posted[chat] - run.started) for chat in first]
    whole = [first[chat] - run.first_try[chat] for chat in first]
    unavailable, other = run.count(503), sum(1 for _, _, s in run.answers if s not in (200, 503))
    print(
        f"{args.messages} messages, {len(run.posted)} accepted; {unavailable} answers 503, each posted again;"
        f" {other} other failures (no answer or another status), posted again"
    )
    print(
        f"lost: {len(unanswered) + len(run.never_accepted)} ({len(unanswered)} accepted and never answered,"
        f" {len(run.never_accepted)} not accepted within {args.give_up:g} s); replies received twice: {twice}"
    )
    print(
        f"max time to a reply: {max(waits, default=(0, 0))[0]:.1f} s from acceptance"
        f" (accepted at {max(waits, default=(0, 0))[1]:.0f} s),"
        f" {max(whole, default=0):.1f} s from her first try"
        f" (pause {args.pause:g} s, freeze {args.freeze:g} s, hold {args.hold:g} s)"
    )
    if run.paused is not None:
        start, end = run.paused
        print(f"database paused from {start - run.started:.0f} s to {end - run.started:.0f} s")
        overlapping = [
            (took, s, sent - run.started)
            for sent, took, s in run.answers
            if sent < end and sent + took > start
        ]
        answered = sorted(
            (sent + took, took, s) for sent, took, s in run.answers if start <= sent + took < end
        )
        if answered:
            _, took, status = answered[-1]
            slowest, slowest_status, at = max(overlapping)
            print(
                f"during the pause: {len(answered)} webhooks answered"
                f" ({sum(1 for *_, s in answered if s == 503)} with 503), the last ({status or 'no answer'})"
                f" in {took:.2f} s; the slowest in flight during it: {slowest:.2f} s ({slowest_status},"
                f" posted at {at:.0f} s)"
                f" (turn limit {args.turn_limit:g} s)"
            )
    print(f"connections reset by the proxy: {run.resets}")
    for name, when in run.faults:
        if name == "database paused":
            continue
        after = [c.at for c in calls if c.at > when]
        takeover = (min(after) - when) if after else float("nan")
        print(f"{name} at {when - run.started:.0f} s: next message left after {takeover:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short run: " + str(QUICK))
    parser.add_argument("--messages", type=int)
    parser.add_argument("--rate", type=float, help="messages a second")
    parser.add_argument("--pause", type=float, help="seconds the database is paused")
    parser.add_argument("--freeze", type=float, help="seconds the active dispatcher is stopped")
    parser.add_argument("--hold", type=float, help="HAMROH_DISPATCH_SENDER_HOLD_SECONDS")
    parser.add_argument("--turn-limit", type=float, help="HAMROH_TURN_TIMEOUT_SECONDS")
    parser.add_argument("--connections", type=int, default=40, help="posts at once (Telegram's default)")
    parser.add_argument("--give-up", type=float, default=60.0, help="seconds a message is posted again")
    parser.add_argument("--postgres", default=postgres_default())
    args = parser.parse_args()
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if not args.postgres:
        sys.exit("PostgreSQL needed: --postgres URL or HAMROH_TEST_POSTGRES_URL")

    async def go() -> None:
        with tempfile.TemporaryDirectory() as folder:
            async with postgres_database(args.postgres) as url:
                await bench(args, url, Path(folder))

    asyncio.run(go())


if __name__ == "__main__":
    main()
