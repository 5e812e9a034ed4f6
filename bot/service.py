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
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import effects, outbox
from bot.announcements import catalogue
from bot.announcements.catalogue import CourseCache as CourseCache  # where callers found it first
from bot.cases import alerts, deliver, intake, transcript
from bot.channels import sms, telegram
from bot.channels.simulated import simulated_address
from bot.conversation.engine import step
from bot.conversation.flows import FlowSet
from bot.conversation.hours import DUSHANBE, Hours
from bot.conversation.model import (
    CaseLeft,
    Channel,
    Counsellors,
    DangerDetected,
    EraseRequested,
    EscalationRequested,
    Event,
    Input,
    OptedOut,
    Reply,
    SafeHoursSet,
    Session,
    Turn,
    WroteToCase,
)
from bot.store import Case, Contact, Delivery, turns
from bot.store.crypto import Vault, normalise_address
from bot.store.db import transaction

DANGER_QUEUE = "support"  # where an urgent case opened by her words waits (priority says it is urgent)

log = logging.getLogger(__name__)


class _Duplicate(Exception):
    """The message was handled before: its turn is rolled back and does nothing."""


@dataclass(frozen=True)
class Inbound:
    """A message as a channel adapter hands it over: who (raw address), what, and the provider's id."""

    channel: Channel
    address: str
    text: str = ""
    button: str | None = None
    media: bool = False
    media_ref: dict[str, str] | None = None  # e.g. {"kind": "photo", "file_id": ...}: for her case only
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
class Hamroh:
    """The service and everything it needs, passed in (clock and token maker too, so tests are exact)."""

    engine: AsyncEngine
    flows: FlowSet
    vault: Vault
    clock: Callable[[], datetime]
    new_token: Callable[[], str]
    service_hours: Hours = field(default_factory=Hours)  # when counsellors answer (Dushanbe time)
    staff_chat: str | None = None  # a Telegram chat that hears of urgent cases (never about her)
    courses: CourseCache = field(init=False)

    def __post_init__(self) -> None:
        self.courses = CourseCache(self.clock)

    async def handle(self, inbound: Inbound) -> Outcome:
        """Run one turn for an inbound message (AddressError if the address is not one).

        A simulated message's address is moved into the simulator's own space first: typing a real
        woman's number there reaches a contact of its own, never hers.
        """
        address = normalise_address(inbound.channel, inbound.address)
        if inbound.simulated:
            address = simulated_address(address)
        try:
            return await self._once(inbound, address)
        except IntegrityError:
            # Another connection won a race: her first two messages at once (the retry finds the contact
            # the other one created).
            log.info("turn on %s raced another; trying once more", inbound.channel)
            return await self._once(inbound, address)

    async def _once(self, inbound: Inbound, address: str) -> Outcome:
        try:
            async with transaction(self.engine) as db:
                return await self._turn(db, inbound, address)
        except _Duplicate:  # rolled back: a redelivery leaves nothing, not even a contact made for it
            return Outcome(duplicate=True)

    async def _turn(self, db: AsyncSession, inbound: Inbound, address: str) -> Outcome:
        now = self.clock()
        contact, stored = await self._contact(db, inbound.channel, address, now)
        assert contact.id is not None
        if inbound.provider_id is not None and not await turns.record_delivery(
            db, channel=inbound.channel, provider_id=inbound.provider_id, contact_id=contact.id, now=now
        ):
            raise _Duplicate
        session = Session.from_json(json.loads(stored)) if stored is not None else Session()
        courses = await self.courses.get(db)
        case = await intake.open_case_of(db, contact)
        if contact.safe_hours is not None:  # only then can anything be held for her
            await deliver.release_held(db, contact.id, now)  # her writing releases what waited
        inp = Input(inbound.text, inbound.button, inbound.media, inbound.channel)
        seen_case, counsellors = intake.as_seen_by_engine(case), self.counsellors(now)
        read_for: tuple[int | None] | None = None  # the course whose places were read; None: nothing read
        if catalogue.needs_live(self.flows, session.node):  # her numbers pick from what those figures show
            read_for = (session.course,)
            courses = await catalogue.with_live(db, courses, contact_id=contact.id, course_id=session.course)
        turn = step(self.flows, session, inp, now, courses=courses, case=seen_case, counsellors=counsellors)
        if catalogue.needs_live(self.flows, turn.session.node) and read_for != (turn.session.course,):
            # The screen she goes to shows places left or her standing: read them, and show it with them.
            course_id = turn.session.course
            courses = await catalogue.with_live(db, courses, contact_id=contact.id, course_id=course_id)
            turn = step(
                self.flows, session, inp, now, courses=courses, case=seen_case, counsellors=counsellors
            )
        if any(isinstance(e, EraseRequested) for e in turn.events):
            await effects.erase_her(db, self.vault, contact, address, now, flows=self.flows)
            if inbound.provider_id is not None:  # still drop a redelivery of this very message
                db.add(Delivery(channel=inbound.channel, provider_id=inbound.provider_id, received_at=now))
            ids = await self._queue(db, None, inbound, address, turn, now, ephemeral=True)
            return Outcome(duplicate=False, contact_id=None, outbox_ids=ids, events=turn.events)
        await self._save(db, contact, turn, now)
        case = await self._cases(db, contact, case, session, inbound, turn, now)
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
        decided, closed = await effects.store_decides(
            db,
            self.vault,
            self.flows,
            contact,
            turn.events,
            session=turn.session,
            courses=courses,
            channel=inbound.channel,
            address=address,
            now=now,
        )
        if closed:
            self.courses.forget()  # a course closed since it was read: list what is open now
        turn = replace(turn, replies=turn.replies + decided)
        ids = await self._queue(db, contact.id, inbound, address, turn, now)
        if case is not None:  # what the bot told her belongs to the transcript the counsellor reads
            for reply in turn.replies:
                transcript.add(db, self.vault, case=case, author="bot", text=reply.text, now=now)
        return Outcome(duplicate=False, contact_id=contact.id, outbox_ids=ids, events=turn.events)

    def counsellors(self, now: datetime) -> Counsellors:
        """Whether counsellors answer now, and when they are back (her time, "09:00") if not."""
        if self.service_hours.open_at(now):
            return Counsellors()
        back = self.service_hours.next_open(now).astimezone(DUSHANBE)
        return Counsellors(available=False, back_at=f"{back:%H:%M}")

    async def _cases(
        self,
        db: AsyncSession,
        contact: Contact,
        case: Case | None,
        before: Session,
        inbound: Inbound,
        turn: Turn,
        now: datetime,
    ) -> Case | None:
        """Apply what the turn did to her case: open or raise it, add her words, close it when she
        leaves; alert staff when it became urgent. Returns her case if one is still open."""
        urgent_now = False
        for event in turn.events:
            match event:
                case EscalationRequested(queue=queue, reason=reason, priority=priority):
                    case, raised = await intake.open_or_raise(
                        db,
                        contact=contact,
                        case=case,
                        queue=queue,
                        category=reason,
                        priority=priority,
                        topics=self._topics(before),
                        now=now,
                    )
                    urgent_now = urgent_now or raised
                case DangerDetected(category=category):
                    case, raised = await intake.open_or_raise(
                        db,
                        contact=contact,
                        case=case,
                        queue=DANGER_QUEUE,
                        category=category,
                        priority=intake.URGENT,
                        topics=self._topics(before),
                        now=now,
                    )
                    urgent_now = urgent_now or raised
                case WroteToCase(text=text) if case is not None:
                    media = inbound.media_ref if inbound.media else None
                    await intake.her_words(db, self.vault, case=case, text=text, media=media, now=now)
                    if case.status == "waiting":
                        case.acknowledged = True  # the engine has told her once; it will not again
                case CaseLeft() if case is not None:
                    why = "She left the chat." if not contact.opted_out else "She stopped all messages."
                    await intake.close_by_system(db, self.vault, case=case, outcome="left", why=why, now=now)
                    case = None
                case SafeHoursSet(hours=hours):
                    contact.safe_hours = hours
                    db.add(contact)
        if urgent_now and case is not None:
            text = alerts.NEW_URGENT.format(id=case.id)
            await alerts.alert(db, self.vault, case=case, text=text, staff_chat=self.staff_chat, now=now)
        return case

    def _topics(self, session: Session) -> list[str]:
        """The topics she looked at before asking (topic ids, never her words), oldest first."""
        refs = (*session.history, session.node or "")
        return [topic for ref in refs if (node := self.flows.nodes.get(ref)) and (topic := node.topic)]

    async def _contact(
        self, db: AsyncSession, channel: Channel, address: str, now: datetime
    ) -> tuple[Contact, str | None]:
        """Her contact, locked for the turn (made on her first message), and her stored session."""
        fingerprint = self.vault.fingerprint(address)
        contact, stored = await turns.her_contact_and_session(db, fingerprint)
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
        return contact, stored

    async def _save(self, db: AsyncSession, contact: Contact, turn: Turn, now: datetime) -> None:
        assert contact.id is not None
        session = turn.session
        encoded = json.dumps(session.to_json(), ensure_ascii=False)
        await turns.save_session(db, contact_id=contact.id, state=encoded, now=now)
        settled = {
            "lang": session.lang,
            "district": session.district,
            "script": session.script,
            "subscribed": session.subscribed,
            "opted_out": session.opted_out,
        }
        for name, value in settled.items():
            if getattr(contact, name) != value:  # an unchanged contact leaves the flush nothing to do
                setattr(contact, name, value)

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
        return await turns.add_outbox(db, answer + rows)


def wire(channel: Channel, reply: Reply, session: Session) -> dict[str, Any]:
    """A reply as its channel will send it."""
    if channel == "sms":
        return {"text": sms.render(reply, session.script)}
    return telegram.render(reply)


async def count_rows(db: AsyncSession, table: Any) -> int:
    """How many rows a table holds (for tests, reports and benchmarks)."""
    return int((await db.exec(select(sa.func.count()).select_from(table))).one())
