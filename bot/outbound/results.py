"""Recording what became of each send: sent, to be tried again, or failed for good.

Results are written in batches (a group commit): a result alone is written at once, and while results
come faster than that, a batch takes whatever finished within GATHER seconds. A busy dispatcher writes a
few statements for many messages instead of a transaction each (at 600 messages a second, 15 a batch
instead of 2), and a quiet one records a message as soon as it went. A row stays "sending" until its
result is committed, so:
- her next message is not claimed before this one is recorded (her messages leave in the order written);
- a crash before the commit leaves the row in doubt, as a crash during its send would;
- the row's lease keeps it from being claimed again meanwhile (a send is never repeated outside a crash).
Each write checks the row is still this dispatcher's (claimed_by), under the row's lock: a successor's
recovery of a row went first (the result is dropped) or waits for the write.

If the database connection breaks while a batch is written, the batch is written again on a fresh one:
those messages went, and sending them again after their lease ran out would be duplicates. A batch that
fails for another reason is written again row by row, so one row's fault keeps no other unrecorded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import outbox, retention
from bot.announcements import outcomes
from bot.outbound.claims import Claimed
from bot.outbound.counts import Counts
from bot.receipts import opt_out
from bot.senders import Failed, RetryLater, SendResult, Sent
from bot.store import ChatMessage, Contact, OutboxMessage
from bot.store.db import transaction

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 10
NOT_REACHABLE = "she opted out or cannot be reached now"  # a bulk row not sent: her recipient is "blocked"
RECORD_RETRIES = (0.05, 0.25, 1.0, 2.0, 4.0)  # seconds before each new try at recording a batch
BATCH = 200  # results written in one transaction at most
GATHER = 0.02  # seconds a batch waits for the results of sends on the wire before it is written
SENT, RETRIED, FAILED = "sent", "retried", "failed"

Backoff = Callable[[int, float | None], float]  # (attempts, the provider's retry-after) -> seconds
Result = tuple[Claimed, SendResult]


def connection_lost(exc: BaseException) -> bool:
    """Whether an error means the database connection broke (reset, closed, timed out), not a bad query."""
    if isinstance(exc, sa.exc.DBAPIError):
        return exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)
    return isinstance(exc, OSError | TimeoutError | sa.exc.DisconnectionError)


def outcome_of(attempts: int, result: SendResult) -> str:
    """Her recipient's outcome for this result (`attempts` counts this one)."""
    match result:
        case Sent():
            return outcomes.SENT
        case RetryLater() if attempts < MAX_ATTEMPTS:
            return outcomes.QUEUED
        case Failed(reason=reason, unreachable=unreachable) if unreachable or reason == NOT_REACHABLE:
            return outcomes.BLOCKED
    return outcomes.FAILED


class Recorder:
    """Writes send results in batches; `record` returns once its result is committed."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        name: str,
        clock: Callable[[], datetime],
        backoff: Backoff,
        counts: Counts,
    ) -> None:
        self.engine, self.name, self.clock, self.backoff, self.counts = engine, name, clock, backoff, counts
        self._pending: list[tuple[Claimed, SendResult, asyncio.Future[str | None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._alone = False  # a result is being written by its own sender's task

    async def record(self, row: Claimed, result: SendResult) -> str | None:
        """Record a result with whatever else is waiting; what was recorded (None: the row is not ours)."""
        writing = self._writer is not None and not self._writer.done()
        if not writing and not self._pending and not self._alone:
            # Alone: written at once in this task, with no hop to another (her next message waits on it).
            self._alone = True
            try:
                return (await self._write([(row, result)]))[0]
            finally:
                self._alone = False
                if self._pending:
                    self._writer = asyncio.create_task(self._write_pending())
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._pending.append((row, result, future))
        if not self._alone and not writing:
            self._writer = asyncio.create_task(self._write_pending())
        return await future

    async def _write_pending(self) -> None:
        busy = True  # it started because results came while one was written
        while self._pending:
            if (busy or len(self._pending) > 1) and len(self._pending) < BATCH:
                await asyncio.sleep(GATHER)  # results come faster than one at a time: let more join
            batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
            busy = len(batch) > 1
            results = [(row, result) for row, result, _ in batch]
            try:
                done = await self._write(results)
            except Exception as exc:
                if connection_lost(exc) or len(batch) == 1:
                    for _, _, future in batch:
                        _settle(future, exc)
                    continue
                log.warning(
                    "%d results not recorded together (%s); one by one", len(batch), type(exc).__name__
                )
                for row, result, future in batch:
                    try:
                        _settle(future, (await self._write([(row, result)]))[0])
                    except Exception as single:
                        _settle(future, single)
                continue
            for (_, _, future), outcome in zip(batch, done, strict=True):
                _settle(future, outcome)

    async def _write(self, results: list[Result]) -> list[str | None]:
        """Write, again on a fresh connection while the connection breaks; count what was committed."""
        for wait in (*RECORD_RETRIES, None):
            try:
                done = await write(
                    self.engine, results, name=self.name, now=self.clock(), backoff=self.backoff
                )
            except Exception as exc:
                if wait is None or not connection_lost(exc):
                    raise
                log.warning(
                    "connection lost recording %d results (%s); recording them again",
                    len(results),
                    type(exc).__name__,
                )
                self.counts.record_retried += len(results)
                await asyncio.sleep(wait)  # a broken connection is dropped from the pool; the next is new
                continue
            self.counts.sent += done.count(SENT)
            self.counts.retried += done.count(RETRIED)
            self.counts.failed += done.count(FAILED)
            return done
        raise AssertionError("unreachable")  # the last try returns or raises


def _settle(future: asyncio.Future[str | None], outcome: str | BaseException | None) -> None:
    if future.done():  # its sender was cancelled meanwhile
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


async def write(
    engine: AsyncEngine, results: Sequence[Result], *, name: str, now: datetime, backoff: Backoff
) -> list[str | None]:
    """Record results in one transaction; what each recorded (None: erased, or no longer ours)."""
    plain = [(row, result) for row, result in results if isinstance(result, Sent) and not row.ephemeral]
    recorded: dict[int, str | None] = {}
    async with transaction(engine) as db:
        if plain:
            ours = await _sent(db, plain, name=name, now=now)
            recorded.update((row.id, SENT if row.id in ours else None) for row, _ in plain)
        for row, result in results:
            if row.id not in recorded:
                recorded[row.id] = await _write_row(db, row, result, name=name, now=now, backoff=backoff)
    return [recorded[row.id] for row, _ in results]


async def _sent(db: AsyncSession, results: Sequence[Result], *, name: str, now: datetime) -> set[int]:
    """Mark rows sent in one statement; the ids that were still ours. Their chat ids and recipients follow."""
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    provider = {
        row.id: result.provider_ids[0]
        for row, result in results
        if isinstance(result, Sent) and result.provider_ids
    }
    connection = await db.connection()
    statement = (
        sa.update(table)
        .where(table.c.id.in_([row.id for row, _ in results]), table.c.claimed_by == name)
        .values(
            status=outbox.SENT,
            sent_at=now,
            last_error=None,
            claimed_by=None,
            lease_until=None,
            provider_id=sa.case(provider, value=table.c.id) if provider else None,
        )
        .returning(table.c.id)
    )
    ours = set((await connection.execute(statement)).scalars())
    chat = [
        {"contact_id": row.contact_id, "message_id": int(message_id), "at": now}
        for row, result in results
        if row.id in ours and row.channel == "telegram" and row.contact_id is not None
        for message_id in (result.provider_ids if isinstance(result, Sent) else ())
    ]
    if chat:
        await connection.execute(sa.insert(ChatMessage.__table__), chat)  # type: ignore[attr-defined]
    bulk = [row.id for row, _ in results if row.id in ours and row.announcement_text_id is not None]
    if bulk:
        await outcomes.record(db, outbox_ids=bulk, outcome=outcomes.SENT, now=now)
    return ours


async def _write_row(
    db: AsyncSession, row: Claimed, result: SendResult, *, name: str, now: datetime, backoff: Backoff
) -> str | None:
    """One result that is more than "sent": a retry, a failure, or an ephemeral row that ends."""
    # Locked: a successor's recovery of this row either went first (we see it) or waits for us.
    current = await db.get(OutboxMessage, row.id, with_for_update=True)
    if current is None or current.claimed_by != name:
        return None  # erased meanwhile, taken over after our lease ran out, or recorded already
    current.claimed_by, current.lease_until = None, None
    if current.announcement_text_id is not None:
        outcome = outcome_of(current.attempts, result)
        await outcomes.record(db, outbox_ids=[row.id], outcome=outcome, now=now)
    recorded: str
    match result:
        case Sent(provider_ids=ids):
            recorded = SENT
            current.status, current.sent_at, current.last_error = outbox.SENT, now, None
            current.provider_id = ids[0] if ids else None
            if current.channel == "telegram" and current.contact_id is not None:
                for message_id in ids:
                    db.add(ChatMessage(contact_id=current.contact_id, message_id=int(message_id), at=now))
            if current.ephemeral:
                await retention.ephemeral_ended(db, current)
                return recorded
        case RetryLater(reason=reason, after=after) if current.attempts < MAX_ATTEMPTS:
            recorded = RETRIED
            current.status, current.last_error = outbox.QUEUED, reason[:200]
            wait = backoff(current.attempts, after)
            current.next_attempt_at = now + timedelta(seconds=wait)
            log.warning(
                "%s message %s: %s; trying again in %.0f s", current.channel, current.id, reason, wait
            )
        case RetryLater(reason=reason) | Failed(reason=reason):
            recorded = FAILED
            current.status, current.last_error = outbox.FAILED, reason[:200]
            log.warning("%s message %s failed for good: %s", current.channel, current.id, reason)
            if current.ephemeral:  # an erase confirmation that cannot be delivered leaves nothing
                await retention.ephemeral_ended(db, current)
                return recorded
            if isinstance(result, Failed) and result.unreachable and current.contact_id is not None:
                await _unreachable(db, current)
    db.add(current)
    return recorded


async def _unreachable(db: AsyncSession, row: OutboxMessage) -> None:
    assert row.contact_id is not None
    if row.channel == "sms":
        await opt_out(db, row.contact_id)  # the carrier says she opted out: respect it everywhere
        return
    contact = await db.get(Contact, row.contact_id)
    if contact is not None:
        contact.reachable = False  # she blocked the bot
        db.add(contact)
