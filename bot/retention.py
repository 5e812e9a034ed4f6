"""Keep less, for less time: what is kept about her, and when it goes.

- A sent or failed outbox row loses its body and address at once (after `body_kept`), and the row itself
  goes after `outbox_kept`; inbound delivery ids (the duplicate check) after `deliveries_kept`.
- A Twilio message id is the only way to find her SMS at Twilio (erasure deletes them through these ids),
  so before a row holding one is dropped, a `delete_sms` command asks Twilio to delete that SMS.
- The way back through the menus (the session's history) goes after `history_kept` of silence.
- A woman silent for `inactive` is erased, without a message to her; an open case, a subscription, or a
  place (or a place on a waiting list) on a course that has not ended counts as activity.
- The confirmation that her data was erased leaves nothing: deleted when it cannot be delivered, and
  deleted at Twilio once delivered (a delivery report, or `confirmation_kept` without one).

The decisions (cut-offs, which ids are Twilio's, what a trimmed session is) are pure functions; the rest
is a few bounded statements per run, run once across processes by the job runner (bot.cases.jobs).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import effects, outbox
from bot.cases import jobs
from bot.conversation.hours import DUSHANBE
from bot.store import (
    OPEN_STATUSES,
    Case,
    Contact,
    ConversationState,
    CourseRow,
    Delivery,
    Enrolment,
    OutboxMessage,
)
from bot.store.courses import ENROLLED, WAITING
from bot.store.crypto import Vault

log = logging.getLogger(__name__)
ENDED = (outbox.SENT, outbox.FAILED, outbox.IN_DOUBT)  # statuses after which a row is never sent again
UNREAD = outbox.SIMULATOR  # simulator rows never read back: gone with the others
FINAL_DELIVERY = ("delivered", "undelivered", "failed", "canceled", "read", "partially_delivered")
SIDS_PER_COMMAND = 50
NO_HISTORY = '"history": []'  # as json.dumps writes an empty history (the service and receipts both do)


@dataclass(frozen=True)
class Policy:
    """How long each kind of record is kept, and how much one run may do (short transactions)."""

    body_kept: timedelta = timedelta(0)
    outbox_kept: timedelta = timedelta(days=3)
    deliveries_kept: timedelta = timedelta(days=3)
    history_kept: timedelta = timedelta(hours=24)
    inactive: timedelta = timedelta(days=365)
    confirmation_kept: timedelta = timedelta(minutes=10)  # waiting for a delivery report that may not come
    batch: int = 500
    contacts_batch: int = 50


@dataclass
class Done:
    """What one run did (logged when it did anything)."""

    bodies_cleared: int = 0
    outbox_deleted: int = 0
    deliveries_deleted: int = 0
    sms_to_delete: int = 0  # Twilio ids handed to delete_sms commands
    histories_trimmed: int = 0
    contacts_erased: int = 0
    confirmations_deleted: int = 0

    def __bool__(self) -> bool:
        return any(vars(self).values())

    def add(self, other: Done) -> None:
        """Count another run's work into this one."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


# --- pure decisions -----------------------------------------------------------------------------------------


def twilio_sids(ids: Iterable[str | None]) -> list[str]:
    """The ids among these that are Twilio message SIDs (the only ones Twilio can delete), sorted, once."""
    return sorted({i for i in ids if i and effects.TWILIO_SID.fullmatch(i)})


def chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    """`items` in lists of at most `size`."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def trimmed(state: dict[str, Any]) -> dict[str, Any] | None:
    """A saved session without its way back (the nodes she passed through); None when it has none."""
    if state.get("history") == []:
        return None
    return {**state, "history": []}


def erase_confirmation_kept(row: OutboxMessage) -> bool:
    """Whether a sent erase confirmation waits for deletion at Twilio (an SMS with Twilio's id) rather than
    going at once."""
    return (
        row.status == outbox.SENT
        and row.channel == "sms"
        and row.kind != "command"
        and bool(twilio_sids([row.provider_id]))
    )


# --- hooks for the dispatcher and delivery reports ----------------------------------------------------------


async def ephemeral_ended(db: AsyncSession, row: OutboxMessage) -> None:
    """An ephemeral row (the erase confirmation, a delete command) was sent or failed for good: it goes,
    except a sent SMS, kept without body or address until Twilio can delete it too."""
    if erase_confirmation_kept(row):
        row.body, row.address = b"", b""
        db.add(row)
    else:
        await db.delete(row)


async def delivery_reported(
    db: AsyncSession, vault: Vault, row: OutboxMessage, status: str, now: datetime
) -> None:
    """A delivery report about an ephemeral SMS: once final, delete it at Twilio and forget its id."""
    if not row.ephemeral or status not in FINAL_DELIVERY:
        return
    queue_sms_deletion(db, vault, twilio_sids([row.provider_id]), now)
    await db.delete(row)


def queue_sms_deletion(db: AsyncSession, vault: Vault, sids: Sequence[str], now: datetime) -> int:
    """Write delete_sms commands for these Twilio ids (belonging to nobody, so no erasure drops them)."""
    for part in chunks(sids, SIDS_PER_COMMAND):
        db.add(
            outbox.row(
                vault,
                contact_id=None,
                channel="sms",
                sealed_address=vault.seal(""),  # a command to Twilio's API, not a message to anyone
                body={"op": "delete_sms", "sids": part},
                now=now,
                kind="command",
                ephemeral=True,
            )
        )
    return len(sids)


# --- the job ------------------------------------------------------------------------------------------------


async def run_if_due(
    engine: AsyncEngine, vault: Vault, *, policy: Policy, every: timedelta, now: datetime
) -> Done | None:
    """Apply the policy once, unless another process did less than `every` ago (then None)."""

    async def work(db: AsyncSession) -> Done:
        return await sweep(db, vault, policy, now)

    done = await jobs.run_once(engine, "retention", every=every, now=now, work=work)
    if done:
        log.info("retention: %s", done)
    return done


async def sweep(db: AsyncSession, vault: Vault, policy: Policy, now: datetime) -> Done:
    """One bounded round of everything the policy says is due, in the caller's transaction."""
    done = Done()
    done.bodies_cleared = await _clear_bodies(db, now - policy.body_kept)
    await _erase_confirmations(db, vault, now - policy.confirmation_kept, now, policy.batch, done)
    await _old_outbox(db, vault, now - policy.outbox_kept, now, policy.batch, done)
    await _old_deliveries(db, vault, now - policy.deliveries_kept, now, policy.batch, done)
    done.histories_trimmed = await _trim_histories(db, now - policy.history_kept, policy.batch)
    done.contacts_erased = await _inactive(db, vault, now - policy.inactive, now, policy.contacts_batch)
    return done


def on_a_course(now: datetime) -> sa.ColumnElement[bool]:
    """Whether the contact of the outer query is enrolled or waiting on a course that has not ended (a course
    without an end ends on its first day; one without either has not ended)."""
    today = now.astimezone(DUSHANBE).date()
    last_day = sa.func.coalesce(col(CourseRow.ends_on), col(CourseRow.starts_on))
    return sa.exists().where(
        col(Enrolment.contact_id) == Contact.id,
        col(Enrolment.status).in_((ENROLLED, WAITING)),
        col(Enrolment.course_id) == col(CourseRow.id),
        sa.or_(last_day.is_(None), last_day >= today),
    )


def _ended_before(cutoff: datetime) -> sa.ColumnElement[bool]:
    ended_at = sa.func.coalesce(col(OutboxMessage.sent_at), col(OutboxMessage.created_at))
    return sa.and_(col(OutboxMessage.status).in_(ENDED), ended_at <= cutoff)


async def _clear_bodies(db: AsyncSession, cutoff: datetime) -> int:
    result = await db.exec(
        sa.update(OutboxMessage)
        .where(_ended_before(cutoff), col(OutboxMessage.body) != b"")
        .values(body=b"", address=b"")
    )
    return int(result.rowcount or 0)


async def _erase_confirmations(
    db: AsyncSession, vault: Vault, cutoff: datetime, now: datetime, batch: int, done: Done
) -> None:
    """Sent erase confirmations whose delivery report never came: delete them at Twilio anyway."""
    query = (
        select(OutboxMessage.id, OutboxMessage.provider_id)
        .where(col(OutboxMessage.ephemeral), _ended_before(cutoff))
        .limit(batch)
    )
    rows = (await db.exec(query)).all()
    if rows:
        done.sms_to_delete += queue_sms_deletion(db, vault, twilio_sids(sid for _, sid in rows), now)
        await db.exec(sa.delete(OutboxMessage).where(col(OutboxMessage.id).in_([i for i, _ in rows])))
        done.confirmations_deleted += len(rows)


async def _old_outbox(
    db: AsyncSession, vault: Vault, cutoff: datetime, now: datetime, batch: int, done: Done
) -> None:
    unread = sa.and_(col(OutboxMessage.status) == UNREAD, col(OutboxMessage.created_at) <= cutoff)
    query = (
        select(OutboxMessage.id, OutboxMessage.channel, OutboxMessage.provider_id)
        .where(sa.or_(_ended_before(cutoff), unread))
        .limit(batch)
    )
    rows = (await db.exec(query)).all()
    if rows:
        done.sms_to_delete += queue_sms_deletion(db, vault, _sms_sids(rows), now)
        await db.exec(sa.delete(OutboxMessage).where(col(OutboxMessage.id).in_([r[0] for r in rows])))
        done.outbox_deleted += len(rows)


async def _old_deliveries(
    db: AsyncSession, vault: Vault, cutoff: datetime, now: datetime, batch: int, done: Done
) -> None:
    query = (
        select(Delivery.id, Delivery.channel, Delivery.provider_id)
        .where(col(Delivery.received_at) <= cutoff)
        .limit(batch)
    )
    rows = (await db.exec(query)).all()
    if rows:
        done.sms_to_delete += queue_sms_deletion(db, vault, _sms_sids(rows), now)
        await db.exec(sa.delete(Delivery).where(col(Delivery.id).in_([r[0] for r in rows])))
        done.deliveries_deleted += len(rows)


def _sms_sids(rows: Sequence[tuple[int | None, str, str | None]]) -> list[str]:
    """The Twilio ids among rows of (id, channel, provider id): their SMS are deleted before the rows go."""
    return twilio_sids(sid for _, channel, sid in rows if channel == "sms")


async def _trim_histories(db: AsyncSession, cutoff: datetime, batch: int) -> int:
    query = (
        select(ConversationState)
        .where(
            col(ConversationState.updated_at) <= cutoff, ~col(ConversationState.state).contains(NO_HISTORY)
        )
        .limit(batch)
    )
    count = 0
    for state in (await db.exec(query)).all():
        new = trimmed(json.loads(state.state))
        if new is not None:  # `updated_at` stays: trimming is not her activity
            state.state = json.dumps(new, ensure_ascii=False)
            db.add(state)
            count += 1
    return count


async def _inactive(db: AsyncSession, vault: Vault, cutoff: datetime, now: datetime, batch: int) -> int:
    """Erase women silent since `cutoff`, without a word to them (an open case, a subscription, or a place
    on a course not yet ended keeps them)."""
    last_heard = sa.func.coalesce(col(ConversationState.updated_at), col(Contact.created_at))
    open_case = sa.exists().where(col(Case.contact_id) == Contact.id, col(Case.status).in_(OPEN_STATUSES))
    query = (
        select(Contact)
        .outerjoin(ConversationState, col(ConversationState.contact_id) == Contact.id)
        .where(last_heard <= cutoff, ~col(Contact.subscribed), ~open_case, ~on_a_course(now))
        .order_by(col(Contact.id))
        .limit(batch)
    )
    contacts = (await db.exec(query)).all()
    for contact in contacts:
        await effects.erase_her(db, vault, contact, vault.open(contact.address), now)
    return len(contacts)
