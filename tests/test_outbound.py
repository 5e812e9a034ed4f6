"""The dispatcher's parts on their own: a claim marks rows, a batch of results is one transaction, pacing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.outbound import claims, results
from bot.ratelimit import PerChatGap, TokenBucket
from bot.senders import RetryLater, Sent
from bot.store import ChatMessage, OutboxMessage
from bot.store.crypto import Vault
from bot.store.db import create_engine, transaction
from tests.conftest import Clock
from tests.test_dispatcher import a_contact, queue


@pytest.fixture
async def engine(database_url: str) -> AsyncEngine:
    created = create_engine(database_url)
    yield created  # type: ignore[misc]
    await created.dispose()


async def claimed(engine: AsyncEngine, clock: Clock, name: str, limit: int = 10) -> list[claims.Claimed]:
    return await claims.claim(
        engine,
        channels={"telegram"},
        limit=limit,
        name=name,
        now=clock(),
        lease=timedelta(seconds=60),
        texts={},
    )


async def test_results_of_many_sends_are_recorded_in_one_transaction(
    engine: AsyncEngine, vault: Vault, clock: Clock
) -> None:
    women = [await a_contact(engine, vault, clock, f"tg:{n}") for n in (1, 2, 3)]
    for n, her in enumerate(women, start=1):
        await queue(engine, vault, clock, her, f"tg:{n}", [f"to {n}"])
    rows = await claimed(engine, clock, "me")
    assert [r.attempts for r in rows] == [1, 1, 1]
    answers = [Sent(("7",)), Sent(("8",)), RetryLater("HTTP 502")]
    done = await results.write(
        engine, list(zip(rows, answers, strict=True)), name="me", now=clock(), backoff=lambda n, a: 5.0
    )
    assert done == ["sent", "sent", "retried"]
    async with transaction(engine) as db:
        stored = (await db.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all()
        kept = sorted(m.message_id for m in (await db.exec(select(ChatMessage))).all())
    assert [(r.status, r.provider_id, r.claimed_by) for r in stored] == [
        ("sent", "7", None),
        ("sent", "8", None),
        ("queued", None, None),
    ]
    assert stored[2].next_attempt_at == clock() + timedelta(seconds=5)
    assert kept == [7, 8]


async def test_a_result_for_a_row_no_longer_ours_is_not_recorded(
    engine: AsyncEngine, vault: Vault, clock: Clock
) -> None:
    her = await a_contact(engine, vault, clock, "tg:1")
    await queue(engine, vault, clock, her, "tg:1", ["hello"])
    (row,) = await claimed(engine, clock, "the one that died")
    done = await results.write(
        engine, [(row, Sent(("9",)))], name="someone else", now=clock(), backoff=lambda n, a: 1.0
    )
    assert done == [None]
    async with transaction(engine) as db:
        assert (await db.exec(select(OutboxMessage))).one().status == "sending"


async def test_her_next_message_is_claimed_only_once_her_last_is_recorded(
    engine: AsyncEngine, vault: Vault, clock: Clock
) -> None:
    her = await a_contact(engine, vault, clock, "tg:1")
    await queue(engine, vault, clock, her, "tg:1", ["first", "second"])
    (first,) = await claimed(engine, clock, "me")
    assert await claimed(engine, clock, "me") == []  # sent, perhaps, but not recorded yet
    await results.write(engine, [(first, Sent(("1",)))], name="me", now=clock(), backoff=lambda n, a: 1.0)
    (second,) = await claimed(engine, clock, "me")
    assert second.id > first.id


async def test_a_bucket_that_starts_empty_sends_its_first_units_at_the_rate() -> None:
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    bucket = TokenBucket(rate=10, burst=10, clock=lambda: now[0], sleep=sleep, full=False)
    now[0] = 50.0  # idle for a long time before the first send: still no burst
    for _ in range(5):
        await bucket.take()
    assert now[0] == pytest.approx(50.5)


async def test_waiting_for_her_turn_does_not_book_it() -> None:
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    gap = PerChatGap(1.0, clock=lambda: now[0], sleep=sleep)
    await gap.wait("tg:1")
    await gap.ready("tg:1")
    assert now[0] == pytest.approx(1.0)
    await gap.wait("tg:1")  # her turn came with the wait above: booked now, no second wait
    assert now[0] == pytest.approx(1.0)
