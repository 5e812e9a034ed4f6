"""An idle dispatcher sleeps, and is woken when there is something to send: a reply written by a turn in
another worker (another engine, as another process has), a row held for her safe hours when they begin, a
listening connection that dropped and was replaced. It looks at the table by itself only rarely here
(`poll_interval` and `unheard_interval` a minute), so each test fails if the wake it is about is missing:
the hang guard is shorter than that minute.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import outbox
from bot.conversation.flows import FlowSet
from bot.conversation.model import Channel
from bot.dispatcher import Dispatcher, Limits
from bot.outbound.claims import Claimed
from bot.outbound.wakeup import APPLICATION_NAME, CHANNEL, SLEEPING
from bot.service import Hamroh, Inbound
from bot.store import OutboxMessage
from bot.store.crypto import Vault
from bot.store.db import create_engine, transaction
from tests.conftest import Clock, Tokens
from tests.test_dispatcher import RecordingSender, a_contact, queue
from tests.test_workers import until  # its guard (30 s) is shorter than ASLEEP too

WAIT_SECONDS = 20.0  # a hang guard, shorter than the dispatcher's own looks: never a measure of speed
ASLEEP = 60.0  # the dispatcher's own looks at the table, so far apart that only a wake sends in time
FAST = Limits(per_second={"telegram": 1000.0, "sms": 1000.0}, per_chat_gap={})


async def until_async(read: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while not (result := await read()):
        assert time.monotonic() < deadline, "waited too long"
        await asyncio.sleep(0.05)
    return result


class Sleepy:
    """A dispatcher that looks at the table by itself once a minute, and counts its looks."""

    def __init__(self, engine: AsyncEngine, vault: Vault, clock: Callable[[], datetime]) -> None:
        self.url = engine.url.render_as_string(hide_password=False).replace("+asyncpg", "")
        self.sender = RecordingSender()
        self.dispatcher = Dispatcher(
            engine=engine,
            vault=vault,
            senders=[self.sender],
            limits=FAST,
            clock=clock,
            poll_interval=ASLEEP,
            unheard_interval=ASLEEP,
        )
        self.looks = 0  # claims that found nothing
        claim = self.dispatcher.claim

        async def counted(channels: set[Channel], limit: int) -> list[Claimed]:
            rows = await claim(channels, limit)
            self.looks += not rows
            return rows

        self.dispatcher.claim = counted  # type: ignore[method-assign]
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def asleep(self) -> None:
        """Started (or done sending), looked and found nothing: it sleeps now. On PostgreSQL it holds the
        lock that asks writers to ring."""
        if self.task is None:
            self.task = asyncio.create_task(self.dispatcher.run(self.stop))
        if self.url.startswith("postgresql"):
            await until_async(lambda: sleeping(self.url))
        looks = await until(lambda: self.looks)
        while True:  # and it has stopped looking
            await asyncio.sleep(0.2)
            if self.looks == looks:
                return
            looks = self.looks

    def texts(self) -> list[str]:
        return [message.body["text"] for message in self.sender.sent if "text" in message.body]

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            await self.task


async def her_turn_wakes_the_sleeper(
    dispatching: AsyncEngine, turning: AsyncEngine, flows: FlowSet, vault: Vault, clock: Clock
) -> None:
    """A dispatcher asleep on `dispatching`; her turn through `turning` queues a reply: it is sent."""
    hamroh = Hamroh(engine=turning, flows=flows, vault=vault, clock=clock, new_token=Tokens())
    sleepy = Sleepy(dispatching, vault, clock)
    try:
        await sleepy.asleep()

        await hamroh.handle(Inbound("telegram", "tg:700001", "salom", provider_id="tg-1"))

        await until(sleepy.texts)
    finally:
        await sleepy.close()


@pytest.mark.postgres
async def test_a_reply_written_by_a_turn_in_another_worker_wakes_the_idle_dispatcher(
    postgres_url: str, flows: FlowSet, vault: Vault, clock: Clock
) -> None:
    engine, elsewhere = create_engine(postgres_url), create_engine(postgres_url)  # as in two workers
    try:
        await her_turn_wakes_the_sleeper(engine, elsewhere, flows, vault, clock)
    finally:
        await engine.dispose()
        await elsewhere.dispose()


async def test_on_sqlite_a_turn_in_the_same_process_wakes_the_idle_dispatcher(
    sqlite_url: str, flows: FlowSet, vault: Vault, clock: Clock
) -> None:
    engine = create_engine(sqlite_url)  # one engine, as `hamroh serve` has on SQLite
    try:
        await her_turn_wakes_the_sleeper(engine, engine, flows, vault, clock)
    finally:
        await engine.dispose()


async def test_a_row_held_for_her_safe_hours_leaves_when_they_begin_without_a_look_in_between(
    database_url: str, vault: Vault
) -> None:
    engine = create_engine(database_url)
    sleepy = Sleepy(engine, vault, real_clock)  # her hours come as the dispatcher sleeps
    try:
        her = await a_contact(engine, vault, real_clock, "tg:1")  # type: ignore[arg-type]
        await queue(engine, vault, real_clock, her, "tg:1", ["good morning"])  # type: ignore[arg-type]
        async with transaction(engine) as db:
            await db.exec(
                sa.update(OutboxMessage).values(
                    held=True, next_attempt_at=real_clock() + timedelta(seconds=2)
                )
            )
        await sleepy.asleep()

        await until(sleepy.texts)  # at her hours, not a minute later
    finally:
        await sleepy.close()
        await engine.dispose()


async def sleeping(url: str, *, granted: bool = True) -> bool:
    """Whether a dispatcher holds the lock that asks writers to ring (it sleeps); with `granted` False,
    whether one waits for it (for writers that found it awake to commit)."""
    key = SLEEPING & 0xFFFF_FFFF_FFFF_FFFF
    connection = await asyncpg.connect(url)
    try:
        return bool(
            await connection.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted = $3"
                " AND classid = $1 AND objid = $2 AND mode = 'ExclusiveLock'",
                key >> 32,
                key & 0xFFFF_FFFF,
                granted,
            )
        )
    finally:
        await connection.close()


def real_clock() -> datetime:
    return datetime.now(UTC)


async def backends(url: str) -> list[int]:
    """The dispatcher's listening sessions on the database at `url`."""
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
            APPLICATION_NAME,
        )
    finally:
        await connection.close()
    return [row["pid"] for row in rows]


async def terminate(url: str, pid: int) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await connection.close()


@pytest.mark.postgres
async def test_a_dropped_listening_connection_is_replaced_and_sending_goes_on(
    postgres_url: str, vault: Vault, clock: Clock
) -> None:
    engine, writer = create_engine(postgres_url), create_engine(postgres_url)
    sleepy = Sleepy(engine, vault, clock)
    try:
        her = await a_contact(writer, vault, clock, "tg:1")
        await sleepy.asleep()
        [first] = await until_async(lambda: backends(postgres_url))

        await terminate(postgres_url, first)

        async def replaced() -> list[int]:
            return [pid for pid in await backends(postgres_url) if pid != first]

        [second] = await until_async(replaced)
        await until(lambda: sleepy.looks >= 2)  # listening again, it looked for what it may have missed
        await asyncio.sleep(0.1)

        await queue(writer, vault, clock, her, "tg:1", ["still here"])
        await until(sleepy.texts)
        assert sleepy.texts() == ["still here"]
        assert await backends(postgres_url) == [second]
    finally:
        await sleepy.close()
        await engine.dispose()
        await writer.dispose()
    assert await backends(postgres_url) == []  # stopped: it no longer listens


@pytest.mark.postgres
async def test_writers_ring_a_sleeping_dispatcher_but_not_one_that_is_sending_and_will_look_anyway(
    postgres_url: str, vault: Vault, clock: Clock
) -> None:
    engine, writer = create_engine(postgres_url), create_engine(postgres_url)
    sleepy = Sleepy(engine, vault, clock)
    heard: list[str] = []  # what the channel carried, in commit order
    listener = await asyncpg.connect(postgres_url)
    await listener.add_listener(CHANNEL, lambda _c, _pid, _channel, payload: heard.append(payload))

    async def mark(name: str) -> None:
        """A notification of our own: once it arrives, so has every one committed before it."""
        await listener.execute(f"NOTIFY {CHANNEL}, '{name}'")
        await until(lambda: name in heard)

    try:
        her, other = (
            await a_contact(writer, vault, clock, "tg:1"),
            await a_contact(writer, vault, clock, "tg:2"),
        )
        await sleepy.asleep()
        sleepy.sender.hold = asyncio.Event()  # her message stays on the wire a while

        await queue(writer, vault, clock, her, "tg:1", ["first"])  # it sleeps: this rings
        await until(lambda: sleepy.dispatcher._in_flight)
        await queue(writer, vault, clock, other, "tg:2", ["while it sends"])  # awake: no ring
        await mark("one")
        assert heard == ["", "one"]

        sleepy.sender.hold.set()
        await until(lambda: sleepy.texts() == ["first", "while it sends"])
        await sleepy.asleep()
        await mark("two")
        assert heard == ["", "one", "two"]  # claiming and recording what it sent rang nobody
    finally:
        await listener.close()
        await sleepy.close()
        await engine.dispose()
        await writer.dispose()


@pytest.mark.postgres
async def test_a_row_written_while_the_dispatcher_was_awake_and_committed_as_it_falls_asleep_is_sent(
    postgres_url: str, vault: Vault, clock: Clock
) -> None:
    engine, writer = create_engine(postgres_url), create_engine(postgres_url)
    sleepy = Sleepy(engine, vault, clock)
    try:
        her = await a_contact(writer, vault, clock, "tg:1")
        other = await a_contact(writer, vault, clock, "tg:2")
        await sleepy.asleep()
        sleepy.sender.hold = asyncio.Event()
        await queue(writer, vault, clock, her, "tg:1", ["first"])
        await until(lambda: sleepy.dispatcher._in_flight)

        async with transaction(writer) as db:  # written while it sends: it does not ring
            row = outbox.row(
                vault,
                contact_id=other,
                channel="telegram",
                sealed_address=vault.seal("tg:2"),
                body={"text": "late"},
                now=clock(),
            )
            await outbox.add(db, [row])
            sleepy.sender.hold.set()  # done sending, it looks, finds nothing yet, and would sleep
            await until_async(lambda: sleeping(postgres_url, granted=False))
        # Committed now: it waited for this before sleeping, and looks once more.

        await until(lambda: sleepy.texts() == ["first", "late"])
    finally:
        await sleepy.close()
        await engine.dispose()
        await writer.dispose()
