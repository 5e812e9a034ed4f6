"""The dispatcher: order, priority, retries, permanent failures, in-doubt sends, one active sender.

The provider edge is a recording sender here (the channel SDKs against fake servers are tested in
test_telegram.py and test_sms.py); the database, the claiming and the locks are real, on both databases.
Where the database connection itself fails, the sender is the real one against the fake Bot API, and the
connection goes through a proxy that resets it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot import outbox
from bot.channels.telegram import TelegramSender
from bot.conversation.model import Channel
from bot.dispatcher import Dispatcher, Limits
from bot.ratelimit import PerChatGap, TokenBucket
from bot.runtime import limits_for
from bot.senders import Failed, Outgoing, RetryLater, Sender, SendResult, Sent
from bot.store import ChatMessage, Contact, OutboxMessage
from bot.store.crypto import Vault
from bot.store.db import create_engine, transaction
from tests.conftest import Clock, settings_for_tests, telegram_contact
from tests.fakes.db_proxy import DatabaseProxy
from tests.fakes.telegram_api import FakeTelegram

FAST = Limits(per_second={"sms": 1000.0, "telegram": 1000.0}, per_chat_gap={})


@dataclass
class RecordingSender:
    """Stands for a provider: records what it is asked to send and answers as scripted."""

    channel: Channel = "telegram"
    credential: str = "bot-1"
    answers: list[Callable[[Outgoing], SendResult]] = field(default_factory=list)
    sent: list[Outgoing] = field(default_factory=list)
    hold: asyncio.Event | None = None
    next_id: int = 100

    def cost(self, message: Outgoing) -> int:
        return 1

    async def send(self, message: Outgoing) -> SendResult:
        if self.hold is not None:
            await self.hold.wait()
        self.sent.append(message)
        if self.answers:
            return self.answers.pop(0)(message)
        self.next_id += 1
        return Sent((str(self.next_id),))

    async def close(self) -> None:
        return None


@pytest.fixture
async def engine(database_url: str) -> AsyncEngine:
    created = create_engine(database_url)
    yield created  # type: ignore[misc]
    await created.dispose()


async def a_contact(engine: AsyncEngine, vault: Vault, clock: Clock, address: str) -> int:
    async with transaction(engine) as db:
        contact = telegram_contact(vault, address, clock())
        db.add(contact)
        await db.flush()
        assert contact.id is not None
        return contact.id


async def queue(
    engine: AsyncEngine,
    vault: Vault,
    clock: Clock,
    contact_id: int | None,
    address: str,
    texts: list[str],
    *,
    kind: str = "reply",
    channel: Channel = "telegram",
) -> None:
    async with transaction(engine) as db:
        rows = [
            outbox.row(
                vault,
                contact_id=contact_id,
                channel=channel,
                sealed_address=vault.seal(address),
                body={"text": text},
                now=clock(),
                kind=kind,
            )
            for text in texts
        ]
        await outbox.add(db, rows)


async def statuses(engine: AsyncEngine) -> list[tuple[str, str, bool]]:
    async with transaction(engine) as db:
        rows = (await db.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all()
        return [(r.status, r.last_error or "", r.in_doubt) for r in rows]


async def run_until_settled(dispatcher: Dispatcher, engine: AsyncEngine, *, rounds: int = 200) -> None:
    """Run the dispatcher until nothing is left to send now."""
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    seen, still = None, 0
    for _ in range(rounds):  # settled: the same statuses five rounds running, nothing in flight
        await asyncio.sleep(0.02)
        now = (await statuses(engine), dispatcher.counts.sent, dispatcher.counts.retried)
        still = still + 1 if now == seen and not dispatcher._in_flight else 0
        seen = now
        if still >= 5:
            break
    stop.set()
    await task


def make(engine: AsyncEngine, vault: Vault, clock: Clock, sender: Sender, **kwargs: object) -> Dispatcher:
    return Dispatcher(
        engine=engine,
        vault=vault,
        senders=[sender],
        limits=FAST,
        clock=clock,
        rng=random.Random(7),
        poll_interval=0.01,
        **kwargs,
    )  # type: ignore[arg-type]


async def test_her_messages_leave_in_the_order_written_and_replies_before_bulk(
    engine: AsyncEngine, vault: Vault, clock: Clock
) -> None:
    her, other = await a_contact(engine, vault, clock, "tg:1"), await a_contact(engine, vault, clock, "tg:2")
    await queue(engine, vault, clock, other, "tg:2", ["news 1", "news 2"], kind="bulk")
    await queue(engine, vault, clock, her, "tg:1", ["part 1", "part 2", "part 3"])
    sender = RecordingSender()
    await run_until_settled(make(engine, vault, clock, sender, concurrency=4), engine)
    texts = [m.body["text"] for m in sender.sent]
    assert [t for t in texts if t.startswith("part")] == ["part 1", "part 2", "part 3"]
    assert texts.index("part 1") < texts.index("news 1")
    assert [t for t in texts if t.startswith("news")] == ["news 1", "news 2"]
    assert [s for s, _, _ in await statuses(engine)] == ["sent"] * 5


async def test_a_passing_failure_is_retried_later_and_the_next_message_waits(
    engine: AsyncEngine, vault: Vault, clock: Clock
) -> None:
    her = await a_contact(engine, vault, clock, "tg:1")
    await queue(engine, vault, clock, her, "tg:1", ["first", "second"])
    sender = RecordingSender(answers=[lambda m: RetryLater("HTTP 502")])
    dispatcher = make(engine, vault, clock, sender)
    await run_until_settled(dispatcher, engine)
    assert [m.body["text"] for m in sender.sent] == ["first"]  # "second" may not overtake it
    assert await statuses(engine) == [("queued", "HTTP 502", False), ("queued", "", False)]
    clock.advance(seconds=10)  # past the backoff
    await run_until_settled(dispatcher, engine)
    assert [m.body["text"] for m in sender.sent] == ["first", "first", "second"]
    assert [s for s, _, _ in await statuses(engine)] == ["sent", "sent"]


async def test_the_providers_retry_after_is_honoured_and_counted(
    engine: AsyncEngine, vault: Vault, clock: Clock
) -> None:
    her = await a_contact(engine, vault, clock, "tg:1")
    await queue(engine, vault, clock, her, "tg:1", ["hello"])
    sender = RecordingSender(answers=[lambda m: RetryLater("HTTP 429", after=30)])
    dispatcher = make(engine, vault, clock, sender)
    await run_until_settled(dispatcher, engine)
    assert dispatcher.counts.rate_limited == 1
    async with transaction(engine) as db:
        row = (await db.exec(select(OutboxMessage))).one()
    assert row.next_attempt_at == clock() + timedelta(seconds=30)


def test_telegram_bursts_the_same_few_messages_however_high_its_rate_is_set(tmp_path: Path) -> None:
    # A burst is how many may leave at once: a count, which a faster clock (or a higher rate) does not grow.
    bursts = {
        rate: limits_for(
            settings_for_tests(tmp_path, "sqlite:///unused.db", telegram_messages_per_second=rate)
        ).burst["telegram"]
        for rate in (1, 30, 600)
    }
    assert bursts == {1: 3, 30: 3, 600: 3}


def test_backoff_grows_exponentially_with_jitter_and_a_cap(
    engine: AsyncEngine, vault: Vault, clock: Clock
) -> None:
    dispatcher = make(engine, vault, clock, RecordingSender())
    waits = [dispatcher.backoff(n, None) for n in range(1, 12)]
    assert 1 <= waits[0] <= 3
    assert 8 <= waits[3] <= 24
    assert max(waits) <= 600 * 1.5
    assert dispatcher.backoff(3, 12.0) == 12.0


async def test_a_permanent_failure_keeps_its_reason_and_a_block_makes_her_unreachable(
    engine: AsyncEngine, vault: Vault, clock: Clock
) -> None:
    her = await a_contact(engine, vault, clock, "tg:1")
    await queue(engine, vault, clock, her, "tg:1", ["bad", "blocked"])
    sender = RecordingSender(
        answers=[
            lambda m: Failed("HTTP 400: chat not found"),
            lambda m: Failed("HTTP 403: blocked", unreachable=True),
        ]
    )
    await run_until_settled(make(engine, vault, clock, sender), engine)
    assert await statuses(engine) == [
        ("failed", "HTTP 400: chat not found", False),
        ("failed", "HTTP 403: blocked", False),
    ]
    async with transaction(engine) as db:
        assert not (await db.get(Contact, her)).reachable  # type: ignore[union-attr]


async def test_sent_telegram_messages_are_remembered_for_clearing_and_ephemeral_rows_go(
    engine: AsyncEngine, vault: Vault, clock: Clock
) -> None:
    her = await a_contact(engine, vault, clock, "tg:1")
    await queue(engine, vault, clock, her, "tg:1", ["hello"])
    async with transaction(engine) as db:
        await outbox.add(
            db,
            [
                outbox.row(
                    vault,
                    contact_id=None,
                    channel="telegram",
                    sealed_address=vault.seal("tg:9"),
                    body={"text": "erased"},
                    now=clock(),
                    ephemeral=True,
                )
            ],
        )
    await run_until_settled(make(engine, vault, clock, RecordingSender()), engine)
    async with transaction(engine) as db:
        assert [m.message_id for m in (await db.exec(select(ChatMessage))).all()] == [101]
        assert len((await db.exec(select(OutboxMessage))).all()) == 1


async def test_sends_in_flight_when_a_dispatcher_died_are_in_doubt(
    engine: AsyncEngine, vault: Vault, clock: Clock
) -> None:
    her = await a_contact(engine, vault, clock, "tg:1")
    await queue(engine, vault, clock, her, "tg:1", ["reply"])
    await queue(engine, vault, clock, None, "tg:2", ["announcement"], kind="bulk")
    died = make(engine, vault, clock, RecordingSender())
    assert len(await died.claim({"telegram"}, 10)) == 2  # ...and then the process was killed
    sender = RecordingSender()
    successor = make(engine, vault, clock, sender)
    await run_until_settled(successor, engine)
    assert [m.body["text"] for m in sender.sent] == ["reply"]  # a duplicate beats silence
    assert await statuses(engine) == [("sent", "", True), ("in_doubt", "", True)]  # bulk: not sent twice
    assert (successor.counts.in_doubt_resent, successor.counts.in_doubt_held) == (1, 1)


async def test_only_one_dispatcher_sends_on_a_credential(
    engine: AsyncEngine, vault: Vault, clock: Clock
) -> None:
    her = await a_contact(engine, vault, clock, "tg:1")
    await queue(engine, vault, clock, her, "tg:1", [f"m{n}" for n in range(5)])
    first, second = RecordingSender(), RecordingSender()
    one, two = make(engine, vault, clock, first), make(engine, vault, clock, second)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(one.run(stop)), asyncio.create_task(two.run(stop))]
    for _ in range(100):
        await asyncio.sleep(0.02)
        if len(first.sent) + len(second.sent) == 5:
            break
    stop.set()
    await asyncio.gather(*tasks)
    assert sorted([len(first.sent), len(second.sent)]) == [0, 5]


async def test_a_message_that_cannot_be_opened_fails_without_stopping_the_rest(
    engine: AsyncEngine, vault: Vault, clock: Clock
) -> None:
    her = await a_contact(engine, vault, clock, "tg:1")
    await queue(engine, vault, clock, her, "tg:1", ["fine"])
    async with transaction(engine) as db:
        row = (await db.exec(select(OutboxMessage))).one()
        row.body = b"not a sealed value"
        db.add(row)
    await queue(engine, vault, clock, None, "tg:2", ["still goes"])
    sender = RecordingSender()
    await run_until_settled(make(engine, vault, clock, sender), engine)
    assert [m.body["text"] for m in sender.sent] == ["still goes"]
    assert (await statuses(engine))[0][0] == "failed"


async def test_a_token_bucket_spends_at_its_rate() -> None:
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    bucket = TokenBucket(rate=30, burst=30, clock=lambda: now[0], sleep=sleep)
    for _ in range(90):
        await bucket.take()
    assert now[0] == pytest.approx(2.0)  # 30 at once, then 60 more at 30 a second
    bucket.pause(5)
    await bucket.take()
    assert now[0] == pytest.approx(7.0 + 1 / 30)


async def test_one_message_a_second_to_one_chat() -> None:
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    gap = PerChatGap(1.0, clock=lambda: now[0], sleep=sleep)
    await gap.wait("tg:1")
    await gap.wait("tg:2")
    assert now[0] == 0
    await gap.wait("tg:1")
    assert now[0] == pytest.approx(1.0)


async def test_a_database_that_stops_answering_for_a_while_does_not_stop_the_dispatcher(
    engine: AsyncEngine, vault: Vault, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    her = await a_contact(engine, vault, clock, "tg:1")
    await queue(engine, vault, clock, her, "tg:1", ["still delivered"])
    sender = RecordingSender()
    dispatcher = make(engine, vault, clock, sender)
    real_claim, failures = dispatcher.claim, [ConnectionError("database went away")]

    async def flaky_claim(channels: set[Channel], limit: int) -> list[OutboxMessage]:
        if failures:
            raise failures.pop()
        return await real_claim(channels, limit)

    monkeypatch.setattr(dispatcher, "claim", flaky_claim)
    monkeypatch.setattr("bot.dispatcher.DATABASE_RETRY", 0.01)
    await run_until_settled(dispatcher, engine)
    assert [m.body["text"] for m in sender.sent] == ["still delivered"]


@pytest.mark.postgres
async def test_a_connection_reset_while_her_reply_is_recorded_is_recorded_again_not_sent_again(
    postgres_url: str, vault: Vault, clock: Clock
) -> None:
    with DatabaseProxy.to(postgres_url) as proxy, FakeTelegram() as fake:
        engine = create_engine(proxy.url)
        sender = TelegramSender(fake.token, api_url=fake.api_url)
        dispatcher, stop = make(engine, vault, clock, sender), asyncio.Event()
        task = asyncio.create_task(dispatcher.run(stop))
        try:
            her = await a_contact(engine, vault, clock, "tg:5001")
            fake.hang(times=1)  # "first" is on the wire...
            await queue(engine, vault, clock, her, "tg:5001", ["first", "second"])
            await eventually(lambda: bool(fake.calls_to("sendMessage")))
            proxy.reset_on(b"UPDATE outbox")  # ...and the connection that records it sent will be reset
            fake.release()
            released = time.monotonic()
            await eventually(lambda: dispatcher.counts.sent == 2)
            took = time.monotonic() - released
        finally:
            fake.release()
            stop.set()
            await task
            await sender.close()
            await engine.dispose()
    assert fake.sent_texts() == ["first", "second"]  # each once, in order
    assert [s for s, _, _ in await statuses_at(postgres_url)] == ["sent", "sent"]
    assert proxy.resets == 1
    assert dispatcher.counts.record_retried == 1
    assert dispatcher.counts.sent == 2
    assert took < 3  # not the lease's minute, then a duplicate


async def eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until `condition` holds; fail after `within` seconds."""
    for _ in range(int(within / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def statuses_at(url: str) -> list[tuple[str, str, bool]]:
    engine = create_engine(url)
    try:
        return await statuses(engine)
    finally:
        await engine.dispose()
