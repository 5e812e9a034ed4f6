"""The one way out: every outbox row leaves through here, with rate limits, retries and a record.

- Claims rows under a lease (bot.outbound.claims): replies before bulk messages, and only the oldest
  waiting row of each person, so her messages leave in the order written. Claims come in batches: a
  channel claims again once a quarter of its slots are free (or nothing of it is in flight).
- Idle, it sleeps: it is woken when rows are written (bot.outbound.wakeup: NOTIFY on PostgreSQL, from any
  process, asked for only while it sleeps; on SQLite, by writes in its own process), when its sends
  finish, and at the time the next row held or retried later may leave (which each claim that empties the
  queue looks up). It still looks at the table every `poll_interval` seconds in case a wake went astray,
  and, while writes in other processes cannot wake it (SQLite; PostgreSQL while its listening connection
  is replaced, or another dispatcher process sleeps), every `unheard_interval` seconds, doubled after each
  look that found nothing up to UNHEARD_CAP. A standby, waiting for a sender lock, asks for it every
  quarter of `sender_hold`: it takes over within a quarter more than the hold.
- One active sender per channel credential (bot.leases), so a provider's limit holds across processes;
  the hold is asked again right before each send, so a sender that froze and lost it sends nothing more.
- Results are recorded in batches, one transaction for whatever finished meanwhile (bot.outbound.results);
  a send's slot is free only once its result is committed. If the database connection breaks while a
  result is written, it is written again on a fresh connection: sending it again would be a duplicate.
- Passing failures are retried with exponential backoff and jitter (honouring the provider's retry-after);
  permanent ones are kept with their reason.
- At least once: a send in flight when a dispatcher died is "in doubt" (bot.outbound.recovery). A reply
  is queued again (a duplicate beats silence); a bulk message is not. Both are counted.
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

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.channels.simulated import is_simulated
from bot.conversation.model import Channel
from bot.leases import DEFAULT_HOLD, Hold, SenderLock, sender_lock
from bot.outbound import claims, recovery
from bot.outbound.claims import Claimed
from bot.outbound.counts import Counts as Counts
from bot.outbound.results import NOT_REACHABLE, Recorder
from bot.outbound.wakeup import Doorbell
from bot.ratelimit import PerChatGap, TokenBucket
from bot.senders import Failed, Outgoing, RetryLater, Sender, SendResult
from bot.store.crypto import Vault

log = logging.getLogger(__name__)
BACKOFF_BASE = 2.0  # seconds before the first retry; doubled each time
BACKOFF_CAP = 600.0
HOUSEKEEPING = timedelta(minutes=1)
DATABASE_RETRY = 2.0  # seconds between attempts while the database does not answer
SLOT_SECONDS = 2.0  # a channel claims no more than it may send in this long...
AHEAD_SECONDS = 0.25  # ...nor, past `concurrency` rows, more than it sends in this long (in doubt at a crash)
CLAIM_SHARE = 4  # a busy channel claims again once this share (a quarter) of its slots is free
UNHEARD_CAP = 2.0  # seconds: the longest an idle dispatcher that cannot hear other processes sleeps
DUE_MARGIN = 0.001  # seconds past a row's time before looking (the loop's timers may fire a hair early)


@dataclass(frozen=True)
class Limits:
    """Sending rates per channel: units (messages or SMS segments) a second, and per chat."""

    per_second: Mapping[Channel, float]
    per_chat_gap: Mapping[Channel, float]
    burst: Mapping[Channel, float] = field(default_factory=dict)  # default: one second's worth


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
    concurrency: int = 16  # sends on the wire at once, per channel
    poll_interval: float = 10.0  # seconds between looks at the table when nothing wakes it
    unheard_interval: float = 0.2  # ...and the first of them while writes elsewhere cannot wake it
    rng: random.Random = field(default_factory=random.Random)
    name: str = field(default_factory=lambda: f"dispatcher-{uuid4().hex[:8]}")
    counts: Counts = field(default_factory=Counts)
    _senders: dict[Channel, Sender] = field(default_factory=dict, init=False)
    _locks: dict[Channel, SenderLock] = field(default_factory=dict, init=False)
    _buckets: dict[Channel, TokenBucket] = field(default_factory=dict, init=False)
    _gaps: dict[Channel, PerChatGap] = field(default_factory=dict, init=False)
    _wire: dict[Channel, asyncio.Semaphore] = field(default_factory=dict, init=False)
    _in_flight: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _flying: dict[Channel, set[asyncio.Task[None]]] = field(default_factory=dict, init=False)
    _slots: dict[Channel, int] = field(default_factory=dict, init=False)
    _batch: dict[Channel, int] = field(default_factory=dict, init=False)
    _unrecovered: set[Channel] = field(default_factory=set, init=False)
    _texts: dict[int, bytes] = field(default_factory=dict, init=False)  # sealed once, never changed
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _due: dict[Channel, datetime] = field(default_factory=dict, init=False)  # each channel's next row later
    _recorder: Recorder = field(init=False)

    def __post_init__(self) -> None:
        for sender in self.senders:
            channel = sender.channel
            self._senders[channel] = sender
            rate = self.limits.per_second.get(channel, 1.0)
            burst = self.limits.burst.get(channel, rate)
            # Empty at first: a dispatcher that starts, or takes over from one that died, may follow sends
            # that spent the provider's burst a moment ago.
            self._buckets[channel] = TokenBucket(rate=rate, burst=max(1.0, burst), full=False)
            # Each channel has slots of its own, no more than its rate sends in SLOT_SECONDS: SMS rows
            # waiting their turn at one segment a second must not take every slot and stall Telegram. A
            # slot is held from the claim until the result is recorded, so a fast channel needs more than
            # it has sends on the wire: enough for AHEAD_SECONDS of sending, and no more (a crash leaves
            # every claimed row in doubt).
            ahead = max(self.concurrency, math.ceil(rate * AHEAD_SECONDS))
            self._slots[channel] = max(1, min(math.ceil(rate * SLOT_SECONDS), ahead))
            self._batch[channel] = max(1, self._slots[channel] // CLAIM_SHARE)
            self._wire[channel] = asyncio.Semaphore(self.concurrency)
            self._flying[channel] = set()
            gap = self.limits.per_chat_gap.get(channel)
            if gap:
                self._gaps[channel] = PerChatGap(gap)
            self._locks[channel] = sender_lock(
                self.engine, channel, sender.credential, hold=self.sender_hold.total_seconds()
            )
        self._recorder = Recorder(
            self.engine, name=self.name, clock=self.clock, backoff=self.backoff, counts=self.counts
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Send until `stop` is set; then finish what is in flight and let go of the sender locks."""
        held: set[Channel] = set()
        tidied = self.clock()
        stopping = asyncio.create_task(self._wake_on(stop))
        bell = Doorbell(self.engine, rung=self._wake)
        unheard = self.unheard_interval  # grows while looks find nothing
        try:
            held = await self._hold_locks(held)
            waiting = sorted(set(self._locks) - held)
            log.info("%s: running; waiting for the sender lock of: %s", self.name, ", ".join(waiting) or "-")
            while not stop.is_set():
                held = await self._hold_locks(held)
                if held:  # a standby has nothing to be woken for
                    await bell.listen()  # at once if it is not listening (first, or its connection dropped)
                if self.clock() - tidied > HOUSEKEEPING:
                    tidied = self.clock()
                    await self._tidy(held)
                    await bell.check()
                self._wake.clear()  # before looking: a wake that comes while it looks is not lost
                try:
                    more, claimed = await self._claim_round(held)
                except Exception as exc:  # the database is away: keep trying, never stop sending for good
                    log.warning("cannot claim messages (%s); trying again", type(exc).__name__)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), DATABASE_RETRY)
                    continue
                if more:
                    continue  # a channel has room and may have more waiting: claim again at once
                if claimed:
                    unheard = self.unheard_interval
                    await bell.wake_up()  # sending: it looks again when sends finish, unasked
                elif held and not self._in_flight and await bell.fall_asleep():
                    continue  # writers ring from now on: look once more for what they wrote before
                sleep = self._sleep(held, bell, unheard)
                try:  # until woken (rows written, slots free, a stop), the next row's time, or a look
                    await asyncio.wait_for(self._wake.wait(), sleep)
                except TimeoutError:
                    unheard = min(UNHEARD_CAP, unheard * 2)
        finally:
            stopping.cancel()
            if self._in_flight:
                await asyncio.wait(self._in_flight)
            for lock in self._locks.values():
                await lock.release()
            await bell.close()
            log.info("dispatcher stopped: %s", self.counts)

    def _sleep(self, held: set[Channel], bell: Doorbell, unheard: float) -> float:
        """How long an idle dispatcher may sleep unless woken."""
        sleep = self.poll_interval if bell.hears else min(self.poll_interval, unheard)
        if held and (again := bell.tries_again_in()) is not None:  # to listen again as soon as it may
            sleep = min(sleep, again)
        if held != set(self._locks):  # a standby asks for the sender locks as often as a holder renews
            sleep = min(sleep, self.sender_hold.total_seconds() / 4)
        due = min((self._due[channel] for channel in held if channel in self._due), default=None)
        if due is not None:  # the next row held or retried later may leave then
            sleep = min(sleep, max(0.0, (due - self.clock()).total_seconds()) + DUE_MARGIN)
        return sleep

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    async def _claim_round(self, held: set[Channel]) -> tuple[bool, bool]:
        """Claim for each channel with room for a batch; whether one may claim more at once, and whether
        anything was claimed."""
        more = claimed = False
        for channel in sorted(held):
            room = self._room(channel)
            if room < self._batch[channel] and self._flying[channel]:
                self._due.pop(channel, None)  # its sends finishing wake it; it looks again then
                continue  # busy: wait until a batch's worth of slots is free
            rows = await self.claim({channel}, room)
            for row in rows:
                self._start(row)
            claimed = claimed or bool(rows)
            more = more or (bool(rows) and len(rows) == room and self._room(channel) >= self._batch[channel])
        return more, claimed

    def _room(self, channel: Channel) -> int:
        return self._slots.get(channel, 0) - len(self._flying.get(channel, ()))

    def _start(self, row: Claimed) -> None:
        task = asyncio.create_task(self._deliver(row))
        self._in_flight.add(task)
        self._flying[row.channel].add(task)
        task.add_done_callback(lambda done: self._finished(done, row.channel))

    def _finished(self, task: asyncio.Task[None], channel: Channel) -> None:
        self._in_flight.discard(task)
        self._flying[channel].discard(task)
        if self._room(channel) >= self._batch[channel]:
            self._wake.set()

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
        resent, held = await recovery.recover(self.engine, channel, now=now, expired_only=expired_only)
        self.counts.in_doubt_resent += resent
        self.counts.in_doubt_held += held
        if resent or held:
            log.warning(
                "%s: %d messages were in flight when a dispatcher stopped (in doubt)", channel, resent + held
            )

    async def claim(self, channels: set[Channel], limit: int) -> list[Claimed]:
        """Take up to `limit` rows that may leave now: each person's oldest waiting row, replies first."""
        return await claims.claim(
            self.engine,
            channels=channels,
            limit=limit,
            name=self.name,
            now=self.clock(),
            lease=self.lease,
            texts=self._texts,
            due=self._due,
        )

    async def _deliver(self, row: Claimed) -> None:
        sender = self._senders[row.channel]
        if not row.reachable:
            await self._settle(row, Failed(NOT_REACHABLE))
            return
        try:
            message = Outgoing(
                id=row.id,
                channel=sender.channel,
                address=self.vault.open(row.address),
                body=json.loads(self.vault.open(row.body)),
                kind=row.kind,
                contact_id=row.contact_id,
            )
        except ValueError:
            await self._settle(row, Failed("cannot open the sealed message (wrong key?)"))
            return
        if is_simulated(message.address):  # the simulator's, whatever wrote it: never to a real channel
            await self._settle(row, Failed("addressed to the simulator"))
            return
        gap = self._gaps.get(sender.channel) if row.kind != "command" else None
        if gap is not None:
            await gap.ready(message.address)  # her last message's gap passes, holding no place on the wire
        # A place on the wire before a turn of the bucket: sends never bunch up behind a slow answer and
        # then leave together, and a 429 pauses everyone not yet sent.
        async with self._wire[sender.channel]:
            await self._buckets[sender.channel].take(sender.cost(message))
            if gap is not None:
                await gap.wait(message.address)  # last, so her turn is booked right before the send
            if not self._locks[sender.channel].holds():  # frozen, or cut off, past the hold: another sends
                await self._stand_down(row)
                return
            try:
                async with asyncio.timeout(self.lease.total_seconds() / 2):
                    result = await sender.send(message)
            except TimeoutError:
                result = RetryLater("no answer in time")
            except Exception as exc:  # a sender bug must not kill the dispatcher; the row is retried
                log.exception("sender %s raised", sender.channel)
                result = RetryLater(f"sender error: {type(exc).__name__}")
        if isinstance(result, RetryLater) and result.after is not None:
            self.counts.rate_limited += 1
            self._buckets[sender.channel].pause(result.after)
        await self._settle(row, result)

    async def _settle(self, row: Claimed, result: SendResult) -> None:
        try:
            await self._record(row, result)
        except Exception as exc:  # the row stays "sending"; its lease runs out and it is in doubt, not lost
            log.warning("%s message %s: result not recorded (%s)", row.channel, row.id, type(exc).__name__)

    async def _record(self, row: Claimed, result: SendResult) -> None:
        """Write a send's result (with whatever else finished meanwhile); returns once it is committed."""
        await self._recorder.record(row, result)

    async def _stand_down(self, row: Claimed) -> None:
        """Give back a row claimed but not sent: it was never in flight, so it is not in doubt."""
        self.counts.stood_down += 1
        try:
            await recovery.give_back(self.engine, row.id, name=self.name, now=self.clock())
        except Exception as exc:  # it stays "sending" and the next active sender recovers it
            log.warning("%s message %s: not given back (%s)", row.channel, row.id, type(exc).__name__)

    def backoff(self, attempts: int, after: float | None) -> float:
        """Seconds to wait before the next try: the provider's word, or exponential with jitter."""
        if after is not None:
            return after
        exponential = BACKOFF_BASE * float(2 ** max(attempts - 1, 0))
        return min(BACKOFF_CAP, exponential) * self.rng.uniform(0.5, 1.5)

    async def forget_old_chat_messages(self) -> int:
        """Telegram message ids older than 48 hours can no longer be deleted: drop them."""
        return await recovery.forget_old_chat_messages(self.engine, now=self.clock())
