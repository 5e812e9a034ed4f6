"""The outbox leaving through the dispatcher to a Bot API that enforces Telegram's limits, clock sped up.

    .venv/bin/python bench/dispatch.py [--messages 5000] [--replies 5] [--bulk 500] [--rate-scale 20]
                                       [--no-kill] [--no-analyze] [--postgres URL]

The outbox is filled as a busy day leaves it: women with a few replies each, written in turns (everyone's
first reply, then everyone's second...), then an announcement to some of them. The real dispatcher and
`TelegramSender` (python-telegram-bot over HTTP) send it all to the fake Bot API of tests/fakes, which
answers 429 to anything over 30 messages a second overall or 1 a second to one chat; both limits, the
fake's and the dispatcher's own (through Settings), run `--rate-scale` times faster so a run takes seconds.
Bursts are counts and do not speed up: every dispatcher, here and in `hamroh dispatch`, bursts the fixed
count of bot.runtime.TELEGRAM_BURST whatever the rate.
The fake runs in a process of its own, so it does not compete with the dispatcher for one interpreter.

The baseline is the allowed rate: each figure is printed beside it, as a ratio, with the CPU this process
spent per message (absolute numbers vary by machine). Also printed: the 429s the
fake answered, texts received more than once, messages lost (0 expected), and whether each woman's messages
arrived in the order they were written.

Runs on SQLite, then (with --postgres or HAMROH_TEST_POSTGRES_URL) on PostgreSQL databases of their own:
alone; with a second dispatcher process (`hamroh dispatch`) started while the first is sending (it waits
for the sender lock the whole run); and, unless --no-kill, with the `hamroh dispatch` process as the active
sender, killed (SIGKILL) half-way, so the one in this process takes over. Replies in flight at the kill are
sent again (a duplicate beats silence) and announcements in flight are held, as designed; both are counted.
Each PostgreSQL outbox is analysed once filled (autovacuum would do it some time later; the test server runs
without autovacuum): without statistics, claiming rows degrades as the run goes on (see --no-analyze).
Each run also prints the claims of the dispatcher in this process (how long each took) and how much of a
core this process used: near 100%, the achieved rate is this machine's limit, not the dispatcher's pacing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import KEYS, NO_POSTGRES, hamroh_env, postgres_database, postgres_default, sqlite_database
from bot import outbox
from bot.config import Settings
from bot.conversation.flows import FlowSet
from bot.conversation.model import Channel
from bot.dispatcher import Counts
from bot.outbound.claims import Claimed
from bot.runtime import build, dispatcher_for, load_content, senders_for
from bot.store import Contact, OutboxMessage
from bot.store.crypto import Vault, make_vault
from bot.store.db import create_engine, transaction
from tests.conftest import TEST_ENCRYPTION_KEY, TEST_HASH_KEY

TELEGRAM_PER_SECOND = 30.0  # Telegram's limits, before scaling
TELEGRAM_PER_CHAT_PER_SECOND = 1.0
FAKE_BURST = 30  # the fake's overall burst: one (unscaled) second's worth
FAKE_SLACK = 0.1  # the fake lets a message through this much (of one message's tokens) early
SECRET = "bench-dispatch-secret"
FIRST_CHAT = 200_000_000
KEYBOARD = {"inline_keyboard": [[{"text": "Menu", "callback_data": "menu"}]]}
CHILD_START_SECONDS = 60.0
LOGGED: list[str] = []  # warnings this process logged during the current run


class _Collect(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        LOGGED.append(f"{record.name}: {record.getMessage()}")


@dataclass(frozen=True)
class Written:
    """What was queued, in the order written."""

    texts: list[str]
    chat_of: dict[str, int]


@dataclass(frozen=True)
class Arrival:
    """A sendMessage call the fake received (`at` is time.monotonic(), the same clock in every process)."""

    chat_id: int
    text: str
    at: float
    status: int | None


@dataclass
class Outcome:
    """What one run did, as the fake saw it and as the database ended."""

    accepted: list[Arrival]  # answered 200, in order of arrival
    refused: list[Arrival]  # answered 429
    throttled: int  # 429s the fake answered
    seconds: float  # from the start of the dispatchers until the outbox was settled
    status: Counter[str]  # outbox rows by final status
    held: set[str]  # texts held in doubt (announcements in flight at a kill; never sent again)
    unsent: set[str]  # texts still queued or in flight when the run ended (only if it gave up)
    resent_in_doubt: int  # rows marked in doubt (in flight at a kill) and sent again
    here: Counts  # what the dispatcher in this process counted
    claims: list[float]  # seconds each claim of the dispatcher in this process took
    cpu: float  # CPU seconds this process spent (its dispatcher, mostly) per second of the run
    cpu_per_message: float  # CPU seconds this process spent per message its dispatcher sent
    gave_up: bool = False
    notes: list[str] = field(default_factory=list)


# --- the outbox ---------------------------------------------------------------------------------------------


async def fill(url: str, vault: Vault, women: int, replies: int, bulk: int) -> Written:
    """Contacts and their queued messages: replies in turns, then announcements."""
    rng = random.Random(20261128)  # a fixed, repeatable spread
    now = datetime.now(UTC)
    texts: list[str] = []
    chat_of: dict[str, int] = {}
    engine = create_engine(url)
    try:
        async with transaction(engine) as db:
            contacts = []
            for n in range(women):
                address = f"tg:{FIRST_CHAT + n}"
                contacts.append(
                    Contact(
                        channel="telegram",
                        fingerprint=vault.fingerprint(address),
                        address=vault.seal(address),
                        lang="tg",
                        subscribed=True,
                        pseudonym=f"bench{n:06d}",
                        pseudonym_month=now.strftime("%Y-%m"),
                        created_at=now,
                    )
                )
            db.add_all(contacts)
            await db.flush()
            rows = []
            for m in range(replies):
                order = list(range(women))
                rng.shuffle(order)  # the turns of one round end in no particular order
                for n in order:
                    text = f"Reply {m + 1} of {replies} to woman {n}: how to ask the court for support"
                    body: dict[str, object] = {"text": text}
                    if m == replies - 1:
                        body["reply_markup"] = KEYBOARD
                    rows.append(_row(vault, contacts[n], body, now, "reply"))
                    texts.append(text)
                    chat_of[text] = FIRST_CHAT + n
            for k in range(bulk):
                n = k % women
                text = f"Announcement {k} to woman {n}: a sewing course opens in Kulob on Monday"
                rows.append(_row(vault, contacts[n], {"text": text}, now, "bulk"))
                texts.append(text)
                chat_of[text] = FIRST_CHAT + n
            await outbox.add(db, rows)
    finally:
        await engine.dispose()
    return Written(texts, chat_of)


def _row(vault: Vault, contact: Contact, body: dict[str, object], now: datetime, kind: str) -> OutboxMessage:
    return outbox.row(
        vault,
        contact_id=contact.id,
        channel="telegram",
        sealed_address=contact.address,
        body=body,
        now=now,
        kind=kind,
    )


async def settle(url: str, seconds: float) -> bool:
    """Wait until no row is left to send (queued, retrying or in flight); False after `seconds`."""
    engine = create_engine(url)
    query = sa.select(sa.func.count()).where(col(OutboxMessage.status).in_((outbox.QUEUED, outbox.SENDING)))
    deadline = time.monotonic() + seconds
    try:
        while True:
            async with engine.connect() as connection:
                if not (await connection.execute(query)).scalar_one():
                    return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.2)
    finally:
        await engine.dispose()


async def analyse(url: str) -> None:
    """Give PostgreSQL statistics of the filled outbox, as autovacuum would some time later."""
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(sa.text("ANALYZE outbox"))
    finally:
        await engine.dispose()


async def final_rows(url: str, vault: Vault) -> list[tuple[str, OutboxMessage]]:
    engine = create_engine(url)
    try:
        async with transaction(engine) as db:
            rows = (await db.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all()
            return [(json.loads(vault.open(r.body))["text"], r) for r in rows]
    finally:
        await engine.dispose()


# --- the fake Bot API, in a process of its own (`dispatch.py --serve-fake SCALE`) ---------------------------


def serve_fake(scale: float) -> None:
    """Run the fake; answer one JSON line for each command read from stdin: count, dump, stop."""
    from tests.fakes.telegram_api import FakeTelegram

    with FakeTelegram(enforce_limits=True, rate_scale=scale) as fake:
        print(json.dumps({"api_url": fake.api_url, "token": fake.token}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            answer: Any = None
            if command == "count":
                answer = len(fake.sent_texts())
            elif command == "dump":
                calls = [[c.chat_id, c.text, c.at, c.status] for c in fake.calls_to("sendMessage")]
                answer = {"throttled": fake.throttled, "calls": calls}
            print(json.dumps(answer), flush=True)
            if command == "stop":
                break


class FakeProcess:
    """The fake Bot API in a child process, asked what it received over a pipe."""

    def __init__(self, scale: float, folder: Path) -> None:
        self.log = folder / f"fake-{time.monotonic_ns()}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, __file__, "--serve-fake", str(scale)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=folder,
                env=hamroh_env(),
                text=True,
            )
        hello = self._line()
        self.api_url: str = hello["api_url"]
        self.token: str = hello["token"]

    def _line(self) -> Any:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the fake Bot API stopped:\n{self.log.read_text()[-2000:]}")
        return json.loads(line)

    def _ask(self, command: str) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._line()

    async def accepted(self) -> int:
        """sendMessage calls answered 200 so far."""
        return int(await asyncio.to_thread(self._ask, "count"))

    async def dump(self) -> tuple[list[Arrival], int]:
        """Every sendMessage call in order of arrival, and the 429s answered."""
        answer = await asyncio.to_thread(self._ask, "dump")
        return [Arrival(*call) for call in answer["calls"]], int(answer["throttled"])

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self._ask("stop")
                self.process.wait(timeout=15)
            except (OSError, RuntimeError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


# --- the dispatchers ----------------------------------------------------------------------------------------


def settings_for(url: str, folder: Path, fake: FakeProcess, scale: float) -> Settings:
    """Development settings with the test keys, Telegram at the fake, the limits scaled like the fake's."""
    return Settings(
        env="development",
        database_url=url,
        var_dir=folder,
        **KEYS,
        telegram_token=fake.token,
        telegram_secret=SECRET,
        telegram_api_url=fake.api_url,
        telegram_messages_per_second=TELEGRAM_PER_SECOND * scale,
        telegram_chat_messages_per_second=TELEGRAM_PER_CHAT_PER_SECOND * scale,
        dispatch_in_process=False,
    )


class Here:
    """A dispatcher in this process, built from the settings as `hamroh serve` builds it."""

    def __init__(self, settings: Settings, flows: FlowSet) -> None:
        self.hamroh = build(settings, flows)
        self.senders = senders_for(settings)
        self.dispatcher = dispatcher_for(settings, self.hamroh, self.senders)
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.claims: list[float] = []  # seconds each claim of rows took
        claim = self.dispatcher.claim

        async def timed(channels: set[Channel], limit: int) -> list[Claimed]:
            started = time.perf_counter()
            try:
                return await claim(channels, limit)
            finally:
                if limit > 0 and channels:
                    self.claims.append(time.perf_counter() - started)

        self.dispatcher.claim = timed  # type: ignore[method-assign]  # the benchmark's stopwatch

    def start(self) -> None:
        self.task = asyncio.create_task(self.dispatcher.run(self.stop))

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            await self.task
        for sender in self.senders:
            await sender.close()
        await self.hamroh.engine.dispose()


class Child:
    """`hamroh dispatch` in a process of its own, started as tests/test_crash.py starts it."""

    def __init__(self, url: str, folder: Path, fake: FakeProcess, scale: float) -> None:
        env = hamroh_env() | {
            "HAMROH_DATABASE_URL": url,
            "HAMROH_VAR_DIR": str(folder),
            "HAMROH_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
            "HAMROH_HASH_KEY": TEST_HASH_KEY,
            "HAMROH_TELEGRAM_TOKEN": fake.token,
            "HAMROH_TELEGRAM_SECRET": SECRET,
            "HAMROH_TELEGRAM_API_URL": fake.api_url,
            "HAMROH_TELEGRAM_MESSAGES_PER_SECOND": str(TELEGRAM_PER_SECOND * scale),
            "HAMROH_TELEGRAM_CHAT_MESSAGES_PER_SECOND": str(TELEGRAM_PER_CHAT_PER_SECOND * scale),
            "HAMROH_LOG_LEVEL": "INFO",
        }
        self.log = folder / f"dispatch-{time.monotonic_ns()}.log"
        with self.log.open("wb") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "dispatch"], cwd=folder, env=env, stdout=log, stderr=log
            )

    def said(self, words: str) -> bool:
        return words in self.log.read_text(errors="replace")

    def counts(self) -> str | None:
        """What it counted, from its last log line ("dispatcher stopped: Counts(...)")."""
        found = re.findall(r"dispatcher stopped: (Counts\(.*\))", self.log.read_text(errors="replace"))
        return found[-1] if found else None

    async def wait_for(self, words: str) -> None:
        for _ in range(int(CHILD_START_SECONDS / 0.05)):
            if self.said(words):
                return
            if self.process.poll() is not None:
                break
            await asyncio.sleep(0.05)
        raise RuntimeError(f"`hamroh dispatch` did not say {words!r}:\n{self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    async def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.process.wait, 30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def until(condition: Callable[[], Awaitable[bool]], seconds: float, every: float = 0.02) -> bool:
    """Poll `condition` until it holds (True) or `seconds` pass (False)."""
    for _ in range(max(1, int(seconds / every))):
        if await condition():
            return True
        await asyncio.sleep(every)
    return False


@dataclass(frozen=True)
class Case:
    name: str
    url: str
    second: str | None = None  # None, "waits" (started after this one sends) or "killed" (sends first)


async def run_case(case: Case, args: argparse.Namespace, folder: Path, flows: FlowSet) -> None:
    print(f"{case.name}:", flush=True)
    LOGGED.clear()
    vault = make_vault(TEST_ENCRYPTION_KEY, TEST_HASH_KEY)
    women = max(1, (args.messages - args.bulk) // args.replies)
    written = await fill(case.url, vault, women, args.replies, args.bulk)
    if not case.url.startswith("sqlite") and not args.no_analyze:
        await analyse(case.url)
    budget = 30 + 6 * len(written.texts) / (TELEGRAM_PER_SECOND * args.rate_scale)
    notes: list[str] = []
    fake = FakeProcess(args.rate_scale, folder)
    try:
        here = Here(settings_for(case.url, folder, fake, args.rate_scale), flows)
        child = None
        try:
            if case.second == "killed":
                child = Child(case.url, folder, fake, args.rate_scale)
                await child.wait_for("active sender for telegram")
            started, cpu = time.monotonic(), time.process_time()
            here.start()  # with a child already sending, it waits for the sender lock
            if case.second == "killed":
                half = len(written.texts) // 2
                await until(lambda: _at_least(fake, half), budget)
                killed_at = time.monotonic()
                assert child is not None
                child.kill()
                notes.append(
                    f"killed the active `hamroh dispatch` (SIGKILL) once {half} messages had arrived"
                )
            elif case.second == "waits":
                await until(lambda: _at_least(fake, 1), budget)
                child = Child(case.url, folder, fake, args.rate_scale)
                await child.wait_for("dispatching for")
                notes.append(f"the `hamroh dispatch` process started {time.monotonic() - started:.1f} s in")
            settled = await settle(case.url, budget - (time.monotonic() - started))
            seconds = time.monotonic() - started
            cpu_seconds = time.process_time() - cpu
            cpu = cpu_seconds / seconds
        finally:
            if child is not None:  # first: the lock this process lets go of must not pass to it
                await child.close()
            await here.close()
        calls, throttled = await fake.dump()
    finally:
        fake.stop()
    accepted = [c for c in calls if c.status == 200]
    if case.second == "killed":
        after = [c.at for c in accepted if c.at > killed_at]
        gap = f"{(after[0] - killed_at) * 1000:.0f} ms" if after else "never"
        notes.append(f"this process took over: its first message left {gap} after the kill")
    if case.second == "waits" and child is not None:
        active = child.said("active sender for telegram")
        notes.append(
            f"it {'BECAME an active sender' if active else 'waited for the sender lock until the end'}: "
            f"{child.counts() or 'it logged no counts'}"
        )
    notes.extend(f"logged: {line}" for line in dict.fromkeys(LOGGED))
    rows = await final_rows(case.url, vault)
    outcome = Outcome(
        accepted=accepted,
        refused=[c for c in calls if c.status == 429],
        throttled=throttled,
        seconds=seconds,
        status=Counter(r.status for _, r in rows),
        held={text for text, r in rows if r.status == outbox.IN_DOUBT},
        unsent={text for text, r in rows if r.status in (outbox.QUEUED, outbox.SENDING)},
        resent_in_doubt=sum(1 for _, r in rows if r.in_doubt and r.status != outbox.IN_DOUBT),
        here=here.dispatcher.counts,
        claims=here.claims,
        cpu=cpu,
        cpu_per_message=cpu_seconds / max(1, here.dispatcher.counts.sent),
        gave_up=not settled,
        notes=notes,
    )
    report(written, outcome, args.rate_scale)


async def _at_least(fake: FakeProcess, count: int) -> bool:
    return await fake.accepted() >= count


# --- the figures --------------------------------------------------------------------------------------------


def report(written: Written, outcome: Outcome, scale: float) -> None:
    allowed = TELEGRAM_PER_SECOND * scale
    gap_allowed = 1 / (TELEGRAM_PER_CHAT_PER_SECOND * scale)
    accepted = outcome.accepted
    received = Counter(c.text for c in accepted)
    span = accepted[-1].at - accepted[0].at if len(accepted) > 1 else 0.0
    rate = (len(accepted) - 1) / span if span else 0.0
    busiest = _busiest_second(accepted)
    closest = _closest_per_chat(accepted)
    duplicates = sum(n - 1 for n in received.values() if n > 1)
    waiting = outcome.held | outcome.unsent
    lost = [t for t in written.texts if t not in received and t not in waiting]
    held_unsent = [t for t in outcome.held if t not in received]
    in_order, women = _in_order(written, accepted, outcome.held)

    ended = "not settled after" if outcome.gave_up else "settled in"
    print(f"  {len(written.texts)} messages queued, {ended} {outcome.seconds:.1f} s")
    if outcome.gave_up:
        print(
            f"  GAVE UP waiting: rows by status {dict(outcome.status)} (queued ones are not counted as lost)"
        )
    figure("achieved rate", f"{rate:.1f} msg/s", f"{allowed:.0f} msg/s", rate / allowed)
    print(
        f"  share of the allowed rate: {rate / allowed:.2f}   CPU per message (this process): "
        f"{outcome.cpu_per_message * 1000:.2f} ms"
    )
    figure("busiest second", f"{busiest} msg", f"{allowed:.0f} msg (+{FAKE_BURST} burst)", busiest / allowed)
    if closest is not None:
        shown = f"{closest * 1000:.1f} ms apart"
        figure(
            "closest two to one chat", shown, f">= {gap_allowed * 1000:.0f} ms apart", gap_allowed / closest
        )
    too_soon = _too_soon_to_one_chat(accepted, outcome.refused, gap_allowed)
    first = min((c.at for c in accepted + outcome.refused), default=0.0)
    when = ", ".join(f"{c.at - first:.2f}" for c in outcome.refused[:6])
    when += ", ..." if len(outcome.refused) > 6 else ""
    print(
        f"  429s answered by the fake: {outcome.throttled} ({too_soon} to a chat too soon, "
        f"{outcome.throttled - too_soon} over the overall rate)" + (f", at {when} s" if when else "")
    )
    print(
        f"  duplicates: {duplicates}   lost: {len(lost)}   "
        f"failed: {outcome.status.get(outbox.FAILED, 0)}   held in doubt (by design): {len(outcome.held)} "
        f"({len(held_unsent)} of them never sent)   in doubt and sent again: {outcome.resent_in_doubt}"
    )
    counts, claims = outcome.here, outcome.claims
    timing = (
        f"p50 {statistics.median(claims) * 1000:.1f} ms, max {max(claims) * 1000:.1f} ms" if claims else "-"
    )
    print(
        f"  this process's dispatcher: sent {counts.sent}, retried {counts.retried}, "
        f"429s seen {counts.rate_limited}, failed {counts.failed}; {len(claims)} claims ({timing}); "
        f"this process used {outcome.cpu:.0%} of a core"
        + (" (near a full core: the rate above is this machine's limit)" if outcome.cpu > 0.8 else "")
    )
    so_far = " (as far as they arrived)" if outcome.gave_up else ""
    print(f"  order: {in_order} of {women} women received their messages in the order written{so_far}")
    for note in outcome.notes:
        print(f"  {note}")


def figure(label: str, value: str, allowed: str, ratio: float) -> None:
    print(f"  {label:<24} {value:>16}   allowed {allowed:<24} ratio {ratio:5.2f}")


def _busiest_second(accepted: list[Arrival]) -> int:
    times = [c.at for c in accepted]
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def _too_soon_to_one_chat(accepted: list[Arrival], refused: list[Arrival], gap: float) -> int:
    """Refusals that came within the fake's per-chat limit of the last message that chat accepted."""
    times: dict[int, list[float]] = defaultdict(list)
    for call in accepted:
        times[call.chat_id].append(call.at)
    soon = 0
    for call in refused:
        before = [at for at in times.get(call.chat_id, []) if at <= call.at]
        if before and call.at - before[-1] < gap * (1 - FAKE_SLACK):
            soon += 1
    return soon


def _closest_per_chat(accepted: list[Arrival]) -> float | None:
    last: dict[int, float] = {}
    closest: float | None = None
    for call in accepted:
        if call.chat_id in last:
            gap = call.at - last[call.chat_id]
            closest = gap if closest is None else min(closest, gap)
        last[call.chat_id] = call.at
    return closest


def _in_order(written: Written, accepted: list[Arrival], held: set[str]) -> tuple[int, int]:
    """Women whose messages arrived in the order written, none skipped (first arrivals; held ones aside)."""
    expected: dict[int, list[str]] = defaultdict(list)
    for text in written.texts:
        if text not in held:
            expected[written.chat_of[text]].append(text)
    arrived: dict[int, list[str]] = defaultdict(list)
    seen: set[str] = set()
    for call in accepted:
        if call.text in written.chat_of and call.text not in seen:
            seen.add(call.text)
            arrived[written.chat_of[call.text]].append(call.text)
    good = sum(1 for chat, texts in expected.items() if arrived[chat] == texts[: len(arrived[chat])])
    return good, len(expected)


# --- the run ------------------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    allowed = TELEGRAM_PER_SECOND * args.rate_scale
    women = max(1, (args.messages - args.bulk) // args.replies)
    print(
        f"Telegram's limits x{args.rate_scale:g}: {allowed:g} msg/s overall, "
        f"{TELEGRAM_PER_CHAT_PER_SECOND * args.rate_scale:g}/s per chat (the fake enforces them, the "
        f"dispatcher is set to them). {women} women x {args.replies} replies + {args.bulk} announcements."
    )
    analysed = (
        "no ANALYZE (--no-analyze)" if args.no_analyze else "ANALYZE after filling, as autovacuum would"
    )
    print(f"PostgreSQL outboxes: {analysed}. Logged warnings are printed under each run.")
    logging.getLogger().addHandler(_Collect(logging.WARNING))
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        flows = load_content(Settings(**KEYS))
        url = await sqlite_database(folder)
        await run_case(Case("SQLite, one dispatcher", url), args, folder, flows)
        if not args.postgres:
            print(NO_POSTGRES)
            return
        cases = [("PostgreSQL, one dispatcher", None), ("PostgreSQL, a second dispatcher waiting", "waits")]
        if not args.no_kill:
            cases.append(("PostgreSQL, the active dispatcher killed half-way", "killed"))
        for title, second in cases:
            async with postgres_database(args.postgres) as url:
                await run_case(Case(title, url, second), args, folder, flows)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=5000, help="messages queued in all (default 5000)")
    parser.add_argument("--replies", type=int, default=5, help="replies queued for each woman (default 5)")
    parser.add_argument("--bulk", type=int, default=500, help="announcements among them (default 500)")
    parser.add_argument("--rate-scale", type=float, default=20.0, help="how much faster the clock runs")
    parser.add_argument("--no-kill", action="store_true", help="skip killing the active dispatcher")
    parser.add_argument(
        "--no-analyze", action="store_true", help="start PostgreSQL runs without statistics of the outbox"
    )
    parser.add_argument("--postgres", default=postgres_default(), help="a PostgreSQL server URL")
    parser.add_argument("--serve-fake", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replies < 1 or args.bulk < 0 or args.messages <= args.bulk or args.rate_scale <= 0:
        parser.error("need at least one reply each, more messages than announcements, a positive scale")
    return args


if __name__ == "__main__":
    arguments = parse()
    if arguments.serve_fake:
        serve_fake(arguments.serve_fake)
    else:
        asyncio.run(main(arguments))
