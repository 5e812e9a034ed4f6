"""The live console: the feed listener across processes (PostgreSQL LISTEN/NOTIFY, SQLite polling)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.cases import feed
from bot.cases.listen import RELOAD, FeedEvent, Listener
from bot.db import create_engine, transaction
from bot.store import Case

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def listener(engine: AsyncEngine) -> AsyncIterator[Listener]:
    listener = Listener(engine, poll_seconds=0.05, ping_seconds=60)
    listener.start()
    yield listener
    await listener.stop()


async def publish(engine: AsyncEngine, kind: str = "case_opened", case_id: int = 1) -> int:
    """A feed event about a case, committed (the case row itself is not needed by the feed)."""
    async with transaction(engine) as db:
        case = Case(id=case_id, channel="sms", queue="support", category="danger", priority="urgent")
        event = await feed.publish(db, kind, case, NOW)
    assert event.id is not None
    return event.id


async def gather(subscription: object, count: int, within: float = 5.0) -> list[FeedEvent]:
    """At least `count` events from a subscription, waiting at most `within` seconds."""
    events: list[FeedEvent] = []
    deadline = time.monotonic() + within
    while len(events) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"got {len(events)} events, not {count}")
        events += await subscription.next(within=left)  # type: ignore[attr-defined]
    return events


async def test_a_subscriber_hears_of_a_new_event_from_another_connection(
    engine: AsyncEngine, listener: Listener
) -> None:
    async with listener.subscribe() as subscription:
        assert await subscription.next(within=0.2) == []
        event_id = await publish(engine, case_id=7)
        [event] = await gather(subscription, 1)
    assert (event.id, event.kind, event.case_id, event.priority, event.queue) == (
        event_id,
        "case_opened",
        7,
        "urgent",
        "support",
    )


@pytest.mark.postgres
async def test_postgres_notify_wakes_the_listener_at_once(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    # Pings once a minute and never polls: only the notification can wake it.
    listener = Listener(engine, ping_seconds=60)
    try:
        async with listener.subscribe() as subscription:
            await asyncio.wait_for(listener.connected.wait(), 5)
            started = time.monotonic()
            await publish(engine)
            [event] = await gather(subscription, 1, within=2)
            assert time.monotonic() - started < 0.5
            assert event.kind == "case_opened"
    finally:
        await listener.stop()
        await engine.dispose()


@pytest.mark.postgres
async def test_postgres_listener_reconnects_and_reads_what_it_missed(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    listener = Listener(engine, ping_seconds=60, retry_seconds=0.05)
    try:
        async with listener.subscribe() as subscription:
            await asyncio.wait_for(listener.connected.wait(), 5)
            admin = await asyncpg.connect(postgres_url)
            try:
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
                )
            finally:
                await admin.close()
            missed = await publish(engine, case_id=1)  # perhaps before it listens again
            events = await gather(subscription, 1, within=5)
            await asyncio.wait_for(listener.connected.wait(), 5)
            later = await publish(engine, case_id=2)
            events += await gather(subscription, 1, within=5)
        assert [e.id for e in events] == [missed, later]
    finally:
        await listener.stop()
        await engine.dispose()


@pytest.mark.postgres
async def test_postgres_an_event_committed_after_a_newer_one_still_arrives(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    listener = Listener(engine, ping_seconds=60)
    try:
        async with listener.subscribe() as subscription:
            await asyncio.wait_for(listener.connected.wait(), 5)
            slow_took_id = asyncio.Event()
            slow_may_commit = asyncio.Event()

            async def slow() -> int:
                async with transaction(engine) as db:
                    case = Case(id=1, channel="sms", queue="support", category="danger", priority="urgent")
                    event = await feed.publish(db, "case_opened", case, NOW)
                    slow_took_id.set()
                    await slow_may_commit.wait()
                assert event.id is not None
                return event.id

            first = asyncio.create_task(slow())
            await slow_took_id.wait()
            second = await publish(engine, case_id=2)  # a higher id, committed first
            got = await gather(subscription, 1)
            slow_may_commit.set()
            lower = await first
            got += await gather(subscription, 1)
        assert lower < second
        assert [e.id for e in got] == [second, lower]
    finally:
        await listener.stop()
        await engine.dispose()


async def test_sqlite_polling_finds_new_rows(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    listener = Listener(engine, poll_seconds=0.05)
    try:
        async with listener.subscribe() as subscription:
            first = await publish(engine, case_id=1)
            second = await publish(engine, case_id=2)
            events = await gather(subscription, 2, within=2)
        assert [e.id for e in events] == [first, second]
    finally:
        await listener.stop()
        await engine.dispose()


async def test_sqlite_reads_nothing_while_nobody_listens(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    listener = Listener(engine, poll_seconds=0.01)
    reads = 0
    original = listener._read

    async def counted(**kwargs: object) -> list[FeedEvent]:
        nonlocal reads
        reads += 1
        return await original(**kwargs)  # type: ignore[arg-type]

    listener._read = counted  # type: ignore[method-assign]
    try:
        listener.start()
        await asyncio.sleep(0.2)
        assert reads == 0
        async with listener.subscribe() as subscription:
            await publish(engine)
            await gather(subscription, 1)
        assert reads > 0
        await asyncio.sleep(0.05)  # the loop notices nobody listens
        idle = reads
        await asyncio.sleep(0.2)
        assert reads == idle
        assert listener.cursor is None
    finally:
        await listener.stop()
        await engine.dispose()


async def test_a_reconnect_with_last_event_id_gets_exactly_the_missed_events(
    engine: AsyncEngine, listener: Listener
) -> None:
    async with listener.subscribe() as subscription:
        seen = [await publish(engine, case_id=n) for n in (1, 2, 3)]
        assert [e.id for e in await gather(subscription, 3)] == seen
    # The browser is gone; the feed goes on.
    missed = [await publish(engine, "case_message", case_id=n) for n in (4, 5)]
    async with listener.subscribe(after=seen[-1]) as subscription:
        events = await gather(subscription, 2)
        live = await publish(engine, "case_claimed", case_id=6)
        events += await gather(subscription, 1)
        assert await subscription.next(within=0.2) == []
    assert [e.id for e in events] == [*missed, live]
    assert [e.kind for e in events] == ["case_message", "case_message", "case_claimed"]


async def test_a_new_subscriber_without_last_event_id_starts_from_now(
    engine: AsyncEngine, listener: Listener
) -> None:
    await publish(engine, case_id=1)
    async with listener.subscribe() as subscription:
        assert await subscription.next(within=0.2) == []
        fresh = await publish(engine, case_id=2)
        assert [e.id for e in await gather(subscription, 1)] == [fresh]


async def test_many_subscribers_each_get_every_event(engine: AsyncEngine, listener: Listener) -> None:
    async with listener.subscribe() as one, listener.subscribe() as two, listener.subscribe() as three:
        assert listener.subscribers == 3
        ids = [await publish(engine, case_id=n) for n in range(4)]
        for subscription in (one, two, three):
            assert [e.id for e in await gather(subscription, 4)] == ids
    assert listener.subscribers == 0


async def test_a_slow_subscriber_gets_one_reload_instead_of_a_growing_buffer(engine: AsyncEngine) -> None:
    listener = Listener(engine, poll_seconds=0.02, queue_size=3)
    try:
        async with listener.subscribe() as slow, listener.subscribe() as quick:
            ids = []
            for n in range(6):
                ids.append(await publish(engine, case_id=n))
                assert [e.id for e in await gather(quick, 1)] == [ids[-1]]
            assert len(slow._buffer) <= 3
            [reload] = await slow.next(within=1)
            assert reload.kind == RELOAD
            assert reload.id == ids[-1]  # where it resumes from
            after = await publish(engine, case_id=9)
            assert [e.id for e in await gather(slow, 1)] == [after]
    finally:
        await listener.stop()


async def test_a_resume_from_too_far_back_is_a_reload(engine: AsyncEngine) -> None:
    ids = [await publish(engine, case_id=n) for n in range(5)]
    listener = Listener(engine, poll_seconds=0.02, queue_size=3)
    try:
        async with listener.subscribe(after=0) as subscription:
            [reload] = await subscription.next(within=1)
        assert (reload.kind, reload.id) == (RELOAD, ids[-1])
        async with listener.subscribe(after=ids[1]) as subscription:
            assert [e.id for e in await gather(subscription, 3)] == ids[2:]
    finally:
        await listener.stop()
