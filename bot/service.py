"""One turn = one transaction: deduplicate, load, run the engine, save, apply events, queue replies.

Nothing is sent inside the transaction: replies go to the outbox, which the dispatcher empties. If
anything fails the whole turn rolls back and the caller answers 5xx, so the provider delivers again and
the duplicate check makes that safe.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import effects, outbox
from bot.channels import sms, telegram
from bot.crypto import Vault, normalise_address
from bot.db import transaction
from bot.engine import step
from bot.flows import FlowSet
from bot.model import (
    Channel,
    Course,
    EraseRequested,
    Event,
    Input,
    OptedOut,
    Reply,
    Session,
    Turn,
)
from bot.store import Contact, ConversationState, CourseRow, Delivery

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inbound:
    """A message as a channel adapter hands it over: who (raw address), what, and the provider's id."""

    channel: Channel
    address: str
    text: str = ""
    button: str | None = None
    media: bool = False
    provider_id: str | None = None  # Telegram update id or Twilio MessageSid: handled once
    message_id: int | None = None  # her Telegram message, kept 48 hours for "Clear this chat"
    simulated: bool = False  # from the simulator: replies are read back by it, never sent
    callback_query_id: str | None = None  # Telegram: the pressed button, answered through the outbox


@dataclass(frozen=True)
class Outcome:
    """What a turn did: whether it was a duplicate, and the outbox rows it wrote."""

    duplicate: bool
    contact_id: int | None = None
    outbox_ids: tuple[int, ...] = ()
    events: tuple[Event, ...] = ()


@dataclass
class CourseCache:
    """Active courses, read at most once a minute (they change rarely; turns are many)."""

    clock: Callable[[], datetime]
    ttl: timedelta = timedelta(seconds=60)
    _courses: tuple[Course, ...] = ()
    _read_at: datetime | None = None

    async def get(self, db: AsyncSession) -> tuple[Course, ...]:
        """The active courses, from memory when read recently."""
        now = self.clock()
        if self._read_at is None or now - self._read_at > self.ttl:
            rows = (await db.exec(select(CourseRow).where(CourseRow.active))).all()
            self._courses = tuple(
                Course(
                    {"tg": r.title_tg, "ru": r.title_ru, "en": r.title_en or r.title_ru},
                    r.district,
                    r.starts_on,
                )
                for r in sorted(rows, key=lambda r: (r.starts_on is None, r.starts_on, r.id))
            )
            self._read_at = now
        return self._courses

    def forget(self) -> None:
        """Read the courses again on the next turn (after a coordinator changed them)."""
        self._read_at = None


@dataclass
class Hamroh:
    """The service and everything it needs, passed in (clock and token maker too, so tests are exact)."""

    engine: AsyncEngine
    flows: FlowSet
    vault: Vault
    clock: Callable[[], datetime]
    new_token: Callable[[], str]
    courses: CourseCache = field(init=False)

    def __post_init__(self) -> None:
        self.courses = CourseCache(self.clock)

    async def handle(self, inbound: Inbound) -> Outcome:
        """Run one turn for an inbound message (AddressError if the address is not one)."""
        address = normalise_address(inbound.channel, inbound.address)
        try:
            async with transaction(self.engine) as db:
                return await self._turn(db, inbound, address)
        except IntegrityError:
            # Another connection won a race: the same delivery (the retry finds it and drops it) or her
            # first two messages at once (the retry finds the contact the other one created).
            log.info("turn on %s raced another; trying once more", inbound.channel)
            async with transaction(self.engine) as db:
                return await self._turn(db, inbound, address)

    async def _turn(self, db: AsyncSession, inbound: Inbound, address: str) -> Outcome:
        now = self.clock()
        if inbound.provider_id is not None:
            seen = await db.exec(
                select(Delivery.id).where(
                    Delivery.channel == inbound.channel, Delivery.provider_id == inbound.provider_id
                )
            )
            if seen.first() is not None:
                return Outcome(duplicate=True)
        contact = await self._contact(db, inbound.channel, address, now)
        assert contact.id is not None
        if inbound.provider_id is not None:
            # Flushed with the replies: a duplicate that raced in fails at commit, and `handle` drops it.
            delivery = Delivery(
                channel=inbound.channel,
                provider_id=inbound.provider_id,
                contact_id=contact.id,
                received_at=now,
            )
            db.add(delivery)
        state = await db.get(ConversationState, contact.id)
        session = Session.from_json(json.loads(state.state)) if state else Session()
        courses = await self.courses.get(db)
        turn = step(
            self.flows, session, Input(inbound.text, inbound.button, inbound.media), now, courses=courses
        )
        if any(isinstance(e, EraseRequested) for e in turn.events):
            await effects.erase_her(db, self.vault, contact, address, now)
            if inbound.provider_id is not None:  # still drop a redelivery of this very message
                db.add(Delivery(channel=inbound.channel, provider_id=inbound.provider_id, received_at=now))
            ids = await self._queue(db, None, inbound, address, turn, now, ephemeral=True)
            return Outcome(duplicate=False, contact_id=None, outbox_ids=ids, events=turn.events)
        await self._save(db, contact, state, turn, now)
        if inbound.message_id is not None and inbound.channel == "telegram":
            await effects.remember_message(db, contact.id, inbound.message_id, now)
        await effects.apply(
            db,
            self.vault,
            contact,
            turn.events,
            channel=inbound.channel,
            session=turn.session,
            now=now,
            simulated=inbound.simulated,
        )
        ids = await self._queue(db, contact.id, inbound, address, turn, now)
        return Outcome(duplicate=False, contact_id=contact.id, outbox_ids=ids, events=turn.events)

    async def _contact(self, db: AsyncSession, channel: Channel, address: str, now: datetime) -> Contact:
        fingerprint = self.vault.fingerprint(address)
        # FOR UPDATE: two messages of hers at once take turns, so neither overwrites the other's session.
        query = select(Contact).where(Contact.fingerprint == fingerprint).with_for_update()
        contact = (await db.exec(query)).first()
        month = now.strftime("%Y-%m")
        if contact is None:
            contact = Contact(
                channel=channel,
                fingerprint=fingerprint,
                address=self.vault.seal(address),
                pseudonym=self.new_token(),
                pseudonym_month=month,
                created_at=now,
            )
            db.add(contact)
            await db.flush()
        elif contact.pseudonym_month != month:
            # A new month, a new pseudonym: request-log rows of past months can no longer be linked to her.
            contact.pseudonym, contact.pseudonym_month = self.new_token(), month
            db.add(contact)
        return contact

    async def _save(
        self, db: AsyncSession, contact: Contact, state: ConversationState | None, turn: Turn, now: datetime
    ) -> None:
        assert contact.id is not None
        session = turn.session
        encoded = json.dumps(session.to_json(), ensure_ascii=False)
        if state is None:
            db.add(ConversationState(contact_id=contact.id, state=encoded, updated_at=now))
        else:
            state.state, state.updated_at = encoded, now
            db.add(state)
        contact.lang, contact.district, contact.script = session.lang, session.district, session.script
        contact.subscribed, contact.opted_out = session.subscribed, session.opted_out
        db.add(contact)

    async def _queue(
        self,
        db: AsyncSession,
        contact_id: int | None,
        inbound: Inbound,
        address: str,
        turn: Turn,
        now: datetime,
        *,
        ephemeral: bool = False,
    ) -> tuple[int, ...]:
        if turn.session.opted_out and not any(isinstance(e, OptedOut) for e in turn.events):
            turn = replace(turn, replies=())  # nothing is sent to her after a stop word but its confirmation
        sealed = self.vault.seal(address)
        answer = []
        if inbound.callback_query_id is not None:  # first, so her button stops spinning before the reply
            answer = [
                telegram.answer_row(
                    self.vault,
                    contact_id=contact_id,
                    address=address,
                    callback_query_id=inbound.callback_query_id,
                    now=now,
                )
            ]
        rows = [
            outbox.row(
                self.vault,
                contact_id=contact_id,
                channel=inbound.channel,
                sealed_address=sealed,
                body=wire(inbound.channel, reply, turn.session),
                now=now,
                ephemeral=ephemeral,
                simulated=inbound.simulated,
            )
            for reply in turn.replies
        ]
        return await outbox.add(db, answer + rows)


def wire(channel: Channel, reply: Reply, session: Session) -> dict[str, Any]:
    """A reply as its channel will send it."""
    if channel == "sms":
        return {"text": sms.render(reply, session.script)}
    return telegram.render(reply)


async def count_rows(db: AsyncSession, table: Any) -> int:
    """How many rows a table holds (for tests, reports and benchmarks)."""
    return int((await db.exec(select(sa.func.count()).select_from(table))).one())
