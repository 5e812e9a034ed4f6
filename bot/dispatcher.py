"""The one way out: every outbox row leaves through here, with rate limits, retries and a record.

- Claims rows under a lease (FOR UPDATE SKIP LOCKED on PostgreSQL), replies before bulk messages, and only
  the oldest waiting row of each person, so her messages leave in the order written.
- One active sender per channel credential (bot.leases), so a provider's limit holds across processes;
  the hold is asked again right before each send, so a sender that froze and lost it sends nothing more.
- A send's result is recorded on a fresh connection again if the database connection breaks while it is
  written: the message went, and sending it again (after its lease ran out) would be a duplicate.
- Passing failures are retried with exponential backoff and jitter (honouring the provider's retry-after);
  permanent ones are kept with their reason.
- At least once: a send in flight when a dispatcher died is "in doubt". A reply is queued again (a
  duplicate beats silence); a bulk message is not. Both are counted.
- A bulk row of an announcement carries no address or body: her contact's sealed address and the
  announcement's sealed text are read when it is claimed, and its recipient's outcome is written in the
  transaction that writes the row. A woman who opted out or became unreachable since it was queued is
  "blocked", and nothing is sent to her.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import uuid4

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import outbox, retention
from bot.announcements import outcomes
from bot.channels.simulated import is_simulated
from bot.conversation.model import Channel
from bot.effects import CLEARABLE
from bot.leases import DEFAULT_HOLD, Hold, SenderLock, sender_lock
from bot.ratelimit import PerChatGap, TokenBucket
from bot.receipts import opt_out
from bot.senders import Failed, Outgoing, RetryLater, Sender, SendResult, Sent
from bot.store import ChatMessage, Contact, OutboxMessage
from bot.store.crypto import Vault
from bot.store.db import is_sqlite, transaction

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 10
BACKOFF_BASE = 2.0  # seconds before the first retry; doubled each time
BACKOFF_CAP = 600.0
HOUSEKEEPING = timedelta(minutes=1)
DATABASE_RETRY = 2.0  # seconds between attempts while the database does not answer
SLOT_SECONDS = 2.0  # a channel claims no more than it may send in this long (and at most `concurrency`)
RECORD_RETRIES = (0.05, 0.25, 1.0, 2.0, 4.0)  # seconds before each new try at recording a send's result
NOT_REACHABLE = "she opted out or cannot be reached now"  # a bulk row not sent: her recipient is "blocked"


@dataclass(frozen=True)
class Limits:
    """Sending rates per channel: units (messages or SMS segments) a second, and per chat."""

    per_second: Mapping[Channel, float]
    per_chat_gap: Mapping[Channel, float]
    burst: Mapping[Channel, float] = field(default_factory=dict)  # default: one second's worth


@dataclass
class Counts:
    """What this dispatcher did since it started (logged, and printed by benchmarks)."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    rate_limited: int = 0  # the provider answered 429
    in_doubt_resent: int = 0  # replies in flight when a dispatcher died, queued again
    in_doubt_held: int = 0  # bulk messages in flight when a dispatcher died, not sent again
    record_retried: int = 0  # results recorded again after the database connection broke
    stood_down: int = 0  # claimed, then not sent: the sender lock was lost before the send


@dataclass
class Dispatcher:
    """Empties the outbox through the given senders until `stop` is set."""

    engine: AsyncEngine
    vault: Vault
    senders: Sequence[Sender]
    limits: Limits
    clock: Callable[[], datetime]
    lease: timedelta = timedelta(seconds=60)
    sender_hold: timedelta = timedelta(seconds=DEFAULT_HOLD)  # a frozen active sender loses its lock after
    concurrency: int = 16  # sends in flight at once, per channel
    poll_interval: float = 0.2
    rng: random.Random = field(default_factory=random.Random)
    name: str = field(default_factory=lambda: f"dispatcher-{uuid4().hex[:8]}")
    counts: Counts = field(default_factory=Counts)
    _locks: dict[Channel, SenderLock] = field(default_factory=dict, init=False)
    _buckets: dict[Channel, TokenBucket] = field(default_factory=dict, init=False)
    _gaps: dict[Channel, PerChatGap] = field(default_factory=dict, init=False)
    _in_flight: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _flying: dict[Channel, set[asyncio.Task[None]]] = field(default_factory=dict, init=False)
    _slots: dict[Channel, int] = field(default_factory=dict, init=False)
    _unrecovered: set[Channel] = field(default_factory=set, init=False)
    _bulk: dict[int, outbox.BulkParts] = field(default_factory=dict, init=False)  # claimed bulk rows, by id
    _texts: dict[int, bytes] = field(default_factory=dict, init=False)  # sealed once, never changed

    def __post_init__(self) -> None:
        for sender in self.senders:
            rate = self.limits.per_second.get(sender.channel, 1.0)
            burst = self.limits.burst.get(sender.channel, rate)
            self._buckets[sender.channel] = TokenBucket(rate=rate, burst=max(1.0, burst))
            # Each channel has slots of its own, no more than its rate sends in SLOT_SECONDS: SMS rows
            # waiting their turn at one segment a second must not take every slot and stall Telegram.
            self._slots[sender.channel] = max(1, min(self.concurrency, math.ceil(rate * SLOT_SECONDS)))
            self._flying[sender.channel] = set()
            gap = self.limits.per_chat_gap.get(sender.channel)
            if gap:
                self._gaps[sender.channel] = PerChatGap(gap)
            self._locks[sender.channel] = sender_lock(
                self.engine, sender.channel, sender.credential, hold=self.sender_hold.total_seconds()
            )

    @property
    def _by_channel(self) -> dict[Channel, Sender]:
        return {s.channel: s for s in self.senders}

    async def run(self, stop: asyncio.Event) -> None:
        """Send until `stop` is set; then finish what is in flight and let go of the sender locks."""
        held: set[Channel] = set()
        tidied = self.clock()
        try:
            held = await self._hold_locks(held)
            waiting = sorted(set(self._locks) - held)
            log.info("%s: running; waiting for the sender lock of: %s", self.name, ", ".join(waiting) or "-")
            while not stop.is_set():
                held = await self._hold_locks(held)
                if self.clock() - tidied > HOUSEKEEPING:
                    tidied = self.clock()
                    await self._tidy(held)
                claimed: list[OutboxMessage] = []
                try:
                    for channel in sorted(held):
                        room = self._room(channel)
                        if room > 0:
                            claimed.extend(await self.claim({channel}, room))
                except Exception as exc:  # the database is away: keep trying, never stop sending for good
                    log.warning("cannot claim messages (%s); trying again", type(exc).__name__)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), DATABASE_RETRY)
                for row in claimed:
                    self._start(row)
                full = [channel for channel in held if self._room(channel) <= 0]
                if claimed and len(full) < len(held):
                    continue  # room left: claim again at once
                if full and self._in_flight:  # a slot frees when a send ends
                    await asyncio.wait(
                        self._in_flight, timeout=self.poll_interval, return_when=asyncio.FIRST_COMPLETED
                    )
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.poll_interval)
        finally:
            if self._in_flight:
                await asyncio.wait(self._in_flight)
            for lock in self._locks.values():
                await lock.release()
            log.info("dispatcher stopped: %s", self.counts)

    def _room(self, channel: Channel) -> int:
        return self._slots.get(channel, 0) - len(self._flying.get(channel, ()))

    def _start(self, row: OutboxMessage) -> None:
        task = asyncio.create_task(self._deliver(row))
        flying = self._flying.setdefault(row.channel, set())  # type: ignore[arg-type]
        for tasks in (self._in_flight, flying):
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def _tidy(self, held: set[Channel]) -> None:
        try:
            for channel in held:
                await self.recover(channel, expired_only=True)  # our own sends that hung past their lease
            await self.forget_old_chat_messages()
        except Exception as exc:  # housekeeping can wait for the next round
            log.warning("housekeeping failed: %s", type(exc).__name__)

    async def _hold_locks(self, held: set[Channel]) -> set[Channel]:
        now_held: set[Channel] = set()
        for channel, lock in self._locks.items():
            try:
                hold = await lock.acquire()
            except Exception as exc:  # the database is unreachable: send nothing until it is back
                log.warning("cannot take the %s sender lock: %s", channel, type(exc).__name__)
                hold = Hold.NONE
            if hold is Hold.TAKEN:
                self._unrecovered.add(channel)
            if hold is Hold.NONE:
                self._unrecovered.discard(channel)  # whoever takes it next recovers
            else:
                now_held.add(channel)
        for channel in sorted(self._unrecovered):
            # Whoever held this channel before us is gone: what they had in flight is in doubt.
            try:
                await self.recover(channel)
            except Exception as exc:  # not ours until recovered: try again next round
                log.warning("cannot recover %s messages in doubt (%s)", channel, type(exc).__name__)
                now_held.discard(channel)
                continue
            self._unrecovered.discard(channel)
            log.info("%s: active sender for %s", self.name, channel)
        return now_held

    async def recover(self, channel: Channel, *, expired_only: bool = False) -> None:
        """Rows left "sending" by a dispatcher that died: replies go again, bulk messages are held."""
        now = self.clock()
        async with transaction(self.engine) as db:
            stale = select(OutboxMessage).where(
                OutboxMessage.channel == channel, OutboxMessage.status == outbox.SENDING
            )
            if expired_only:
                stale = stale.where(col(OutboxMessage.lease_until) < now)
            rows = (await db.exec(stale.with_for_update(skip_locked=True))).all()
            doubted: list[int] = []
            for row in rows:
                row.in_doubt, row.claimed_by, row.lease_until = True, None, None
                if row.kind == "bulk":
                    row.status = outbox.IN_DOUBT
                    self.counts.in_doubt_held += 1
                    if row.announcement_text_id is not None and row.id is not None:
                        doubted.append(row.id)
                else:
                    row.status, row.next_attempt_at = outbox.QUEUED, now
                    self.counts.in_doubt_resent += 1
                db.add(row)
            await outcomes.record(db, outbox_ids=doubted, outcome=outcomes.IN_DOUBT, now=now)
        if rows:
            log.warning(
                "%s: %d messages were in flight when a dispatcher stopped (in doubt)", channel, len(rows)
            )

    async def claim(self, channels: set[Channel], limit: int) -> list[OutboxMessage]:
        """Take up to `limit` rows that may leave now: each person's oldest waiting row, replies first."""
        if limit <= 0 or not channels:
            return []
        now = self.clock()
        table = OutboxMessage.__table__  # type: ignore[attr-defined]
        earlier = table.alias("earlier")
        # Her messages leave in the order written, within a priority: a reply never waits behind an
        # announcement queued (or held for her safe hours) before it.
        waiting_before = sa.exists().where(
            earlier.c.contact_id == table.c.contact_id,
            earlier.c.id < table.c.id,
            earlier.c.status.in_((outbox.QUEUED, outbox.SENDING)),
            earlier.c.priority <= table.c.priority,
        )
        candidates = (
            sa.select(table.c.id)
            .where(
                table.c.status == outbox.QUEUED,
                table.c.channel.in_(sorted(channels)),
                table.c.next_attempt_at <= now,
                ~waiting_before,
            )
            .order_by(table.c.priority, table.c.id)
            .limit(limit)
        )
        if not is_sqlite(self.engine):
            candidates = candidates.with_for_update(skip_locked=True, of=table)
        async with transaction(self.engine) as db:
            connection = await db.connection()
            ids = list((await connection.execute(candidates)).scalars().all())
            if not ids:
                return []
            await connection.execute(
                sa.update(table)
                .where(table.c.id.in_(ids))
                .values(
                    status=outbox.SENDING,
                    claimed_by=self.name,
                    lease_until=now + self.lease,
                    attempts=table.c.attempts + 1,
                )
            )
            rows = (await db.exec(select(OutboxMessage).where(col(OutboxMessage.id).in_(ids)))).all()
            self._bulk.update(await outbox.bulk_parts(db, rows, self._texts))
        return sorted(rows, key=lambda r: (r.priority, r.id or 0))

    async def _deliver(self, row: OutboxMessage) -> None:
        assert row.id is not None
        sender = self._by_channel[row.channel]  # type: ignore[index]
        address, body = row.address, row.body
        bulk = self._bulk.pop(row.id, None)
        if bulk is not None:
            if not bulk.reachable:
                await self._record(row, Failed(NOT_REACHABLE))
                return
            address, body = bulk.address, bulk.body
        try:
            message = Outgoing(
                id=row.id,
                channel=sender.channel,
                address=self.vault.open(address),
                body=json.loads(self.vault.open(body)),
                kind=row.kind,
                contact_id=row.contact_id,
            )
        except ValueError:
            await self._record(row, Failed("cannot open the sealed message (wrong key?)"))
            return
        if is_simulated(message.address):  # the simulator's, whatever wrote it: never to a real channel
            await self._record(row, Failed("addressed to the simulator"))
            return
        await self._buckets[sender.channel].take(sender.cost(message))
        gap = self._gaps.get(sender.channel)
        if gap is not None and row.kind != "command":
            await gap.wait(message.address)  # last, so her turn is booked right before the send
        if not self._locks[sender.channel].holds():  # frozen, or cut off, past the hold: another sends now
            await self._stand_down(row)
            return
        try:
            timeout = self.lease.total_seconds() / 2
            result = await asyncio.wait_for(sender.send(message), timeout)
        except TimeoutError:
            result = RetryLater("no answer in time")
        except Exception as exc:  # a sender bug must not kill the dispatcher; the row is retried
            log.exception("sender %s raised", sender.channel)
            result = RetryLater(f"sender error: {type(exc).__name__}")
        if isinstance(result, RetryLater) and result.after is not None:
            self.counts.rate_limited += 1
            self._buckets[sender.channel].pause(result.after)
        try:
            await self._record(row, result)
        except Exception as exc:  # the row stays "sending"; its lease runs out and it is in doubt, not lost
            log.warning("%s message %s: result not recorded (%s)", row.channel, row.id, type(exc).__name__)

    async def _record(self, row: OutboxMessage, result: SendResult) -> None:
        """Write a send's result; if the connection breaks meanwhile, write it again on a fresh one."""
        for wait in (*RECORD_RETRIES, None):
            try:
                outcome = await self._write_result(row, result)
            except Exception as exc:
                if wait is None or not connection_lost(exc):
                    raise
                log.warning(
                    "%s message %s: connection lost recording its result (%s); recording it again",
                    row.channel,
                    row.id,
                    type(exc).__name__,
                )
                self.counts.record_retried += 1
                await asyncio.sleep(wait)  # a broken connection is dropped from the pool; the next is new
                continue
            if outcome == "sent":
                self.counts.sent += 1
            elif outcome == "retried":
                self.counts.retried += 1
            elif outcome == "failed":
                self.counts.failed += 1
            return

    async def _write_result(self, row: OutboxMessage, result: SendResult) -> str | None:
        """One try at recording a result; what it recorded (counted only once it is committed)."""
        now = self.clock()
        outcome: str | None = None
        async with transaction(self.engine) as db:
            # Locked: a successor's recovery of this row either went first (we see it) or waits for us.
            current = await db.get(OutboxMessage, row.id, with_for_update=True)
            if current is None or current.claimed_by != self.name:
                return None  # erased meanwhile, taken over after our lease ran out, or recorded already
            current.claimed_by, current.lease_until = None, None
            if current.announcement_text_id is not None:
                await outcomes.record(
                    db, outbox_ids=[row.id or 0], outcome=self._outcome_of(current, result), now=now
                )
            match result:
                case Sent(provider_ids=ids):
                    outcome = "sent"
                    current.status, current.sent_at, current.last_error = outbox.SENT, now, None
                    current.provider_id = ids[0] if ids else None
                    if current.channel == "telegram" and current.contact_id is not None:
                        for message_id in ids:
                            db.add(
                                ChatMessage(contact_id=current.contact_id, message_id=int(message_id), at=now)
                            )
                    if current.ephemeral:
                        await retention.ephemeral_ended(db, current)
                        return outcome
                case RetryLater(reason=reason, after=after) if current.attempts < MAX_ATTEMPTS:
                    outcome = "retried"
                    current.status, current.last_error = outbox.QUEUED, reason[:200]
                    wait = self.backoff(current.attempts, after)
                    current.next_attempt_at = now + timedelta(seconds=wait)
                    log.warning(
                        "%s message %s: %s; trying again in %.0f s", current.channel, current.id, reason, wait
                    )
                case RetryLater(reason=reason) | Failed(reason=reason):
                    outcome = "failed"
                    current.status, current.last_error = outbox.FAILED, reason[:200]
                    log.warning("%s message %s failed for good: %s", current.channel, current.id, reason)
                    if current.ephemeral:  # an erase confirmation that cannot be delivered leaves nothing
                        await retention.ephemeral_ended(db, current)
                        return outcome
                    if isinstance(result, Failed) and result.unreachable and current.contact_id is not None:
                        await self._unreachable(db, current)
            db.add(current)
        return outcome

    @staticmethod
    def _outcome_of(row: OutboxMessage, result: SendResult) -> str:
        """Her recipient's outcome for this result (the row's attempts already count this one)."""
        match result:
            case Sent():
                return outcomes.SENT
            case RetryLater() if row.attempts < MAX_ATTEMPTS:
                return outcomes.QUEUED
            case Failed(reason=reason, unreachable=unreachable) if unreachable or reason == NOT_REACHABLE:
                return outcomes.BLOCKED
        return outcomes.FAILED

    async def _stand_down(self, row: OutboxMessage) -> None:
        """Give back a row claimed but not sent: it was never in flight, so it is not in doubt."""
        self.counts.stood_down += 1
        try:
            async with transaction(self.engine) as db:
                current = await db.get(OutboxMessage, row.id, with_for_update=True)
                if current is None or current.claimed_by != self.name:
                    return  # the new active sender recovered it already
                current.status, current.claimed_by, current.lease_until = outbox.QUEUED, None, None
                current.attempts, current.next_attempt_at = max(0, current.attempts - 1), self.clock()
                db.add(current)
        except Exception as exc:  # it stays "sending" and the next active sender recovers it
            log.warning("%s message %s: not given back (%s)", row.channel, row.id, type(exc).__name__)

    async def _unreachable(self, db: AsyncSession, row: OutboxMessage) -> None:
        assert row.contact_id is not None
        if row.channel == "sms":
            await opt_out(db, row.contact_id)  # the carrier says she opted out: respect it everywhere
            return
        contact = await db.get(Contact, row.contact_id)
        if contact is not None:
            contact.reachable = False  # she blocked the bot
            db.add(contact)

    def backoff(self, attempts: int, after: float | None) -> float:
        """Seconds to wait before the next try: the provider's word, or exponential with jitter."""
        if after is not None:
            return after
        exponential = BACKOFF_BASE * float(2 ** max(attempts - 1, 0))
        return min(BACKOFF_CAP, exponential) * self.rng.uniform(0.5, 1.5)

    async def forget_old_chat_messages(self) -> int:
        """Telegram message ids older than 48 hours can no longer be deleted: drop them."""
        async with transaction(self.engine) as db:
            result = await db.exec(
                sa.delete(ChatMessage).where(col(ChatMessage.at) < self.clock() - CLEARABLE)
            )
            return int(result.rowcount or 0)


def connection_lost(exc: BaseException) -> bool:
    """Whether an error means the database connection broke (reset, closed, timed out), not a bad query."""
    if isinstance(exc, sa.exc.DBAPIError):
        return exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)
    return isinstance(exc, OSError | TimeoutError | sa.exc.DisconnectionError)
