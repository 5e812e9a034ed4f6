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

from bot.conversation.flows import FlowSet
from bot.conversation.model import Channel
from bot.dispatcher import Dispatcher, Limits
from bot.outbound.claims import Claimed
from bot.outbound.wakeup import APPLICATION_NAME
from bot.service import Hamroh, Inbound
from bot.store import OutboxMessage
from bot.store.crypto import Vault
from bot.store.db import create_engine, transaction
from tests.conftest import Clock, Tokens
from tests.test_dispatcher import RecordingSender, a_contact, queue

WAIT_SECONDS = 20.0  # a hang guard, shorter than the dispatcher's own looks: never a measure of speed
ASLEEP = 60.0  # the dispatcher's own looks at the table, so far apart that only a wake sends in time
FAST = Limits(per_second={"telegram": 1000.0, "sms": 1000.0}, per_chat_gap={})


async def until(condition: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while not (result := condition()):
        assert time.monotonic() < deadline, "waited too long"
        await asyncio.sleep(0.02)
    return result


async def until_async(read: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while not (result := await read()):
        assert time.monotonic() < deadline, "waited too long"
        await asyncio.sleep(0.05)
    return result


class Sleepy:
    """A dispatcher that looks at the table by itself once a minute, and counts its looks."""

    def __init__(self, engine: AsyncEngine, vault: Vault, clock: Callable[[], datetime]) -> None:
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
        """Started, looked and found nothing: it sleeps now."""
        self.task = asyncio.create_task(self.dispatcher.run(self.stop))
        looks = await until(lambda: self.looks)
        await asyncio.sleep(0.1)
        assert self.looks == looks  # nothing woke it meanwhile: it sleeps

    def texts(self) -> list[str]:
        return [message.body["text"] for message in self.sender.sent if "text" in message.body]

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            await self.task


@pytest.mark.postgres
async def test_a_reply_written_by_a_turn_in_another_worker_wakes_the_idle_dispatcher(
    postgres_url: str, flows: FlowSet, vault: Vault, clock: Clock
) -> None:
    engine, elsewhere = create_engine(postgres_url), create_engine(postgres_url)  # as in two workers
    hamroh = Hamroh(engine=elsewhere, flows=flows, vault=vault, clock=clock, new_token=Tokens())
    sleepy = Sleepy(engine, vault, clock)
    try:
        await sleepy.asleep()

        await hamroh.handle(Inbound("telegram", "tg:700001", "salom", provider_id="tg-1"))

        await until(sleepy.texts)
    finally:
        await sleepy.close()
        await engine.dispose()
        await elsewhere.dispose()


async def test_on_sqlite_a_turn_in_the_same_process_wakes_the_idle_dispatcher(
    sqlite_url: str, flows: FlowSet, vault: Vault, clock: Clock
) -> None:
    engine = create_engine(sqlite_url)  # one engine, as `hamroh serve` has on SQLite
    hamroh = Hamroh(engine=engine, flows=flows, vault=vault, clock=clock, new_token=Tokens())
    sleepy = Sleepy(engine, vault, clock)
    try:
        await sleepy.asleep()

        await hamroh.handle(Inbound("telegram", "tg:700002", "salom", provider_id="tg-2"))

        await until(sleepy.texts)
    finally:
        await sleepy.close()
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
