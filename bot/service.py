"""One turn = one transaction: load her (locked), record the delivery, run the engine, save, apply events,
queue replies.

Nothing is sent inside the transaction: replies go to the outbox, which the dispatcher empties. If
anything fails the whole turn rolls back and the caller answers 5xx, so the provider delivers again and
the duplicate check makes that safe. A redelivery is found when its delivery is recorded (on PostgreSQL
with the turn's last statement, bot.store.turns) and rolls the whole turn back: it leaves nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
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
from bot.store import Case, Delivery, turns
from bot.store.crypto import Vault, normalise_address
from bot.store.direct import Redelivered
from bot.store.turns import Her, TurnDb

DANGER_QUEUE = "support"  # where an urgent case opened by her words waits (priority says it is urgent)

log = logging.getLogger(__name__)


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
            async with turns.turn_transaction(self.engine) as db:
                return await self._turn(db, inbound, address)
        except Redelivered:  # rolled back: a redelivery leaves nothing, not even a contact made for it
            return Outcome(duplicate=True)

    async def _turn(self, db: TurnDb, inbound: Inbound, address: str) -> Outcome:
        now = self.clock()
        her, stored = await self._her(db, inbound.channel, address, now)
        if inbound.provider_id is not None:  # a redelivery rolls the turn back (Redelivered)
            await turns.record_delivery(
                db, channel=inbound.channel, provider_id=inbound.provider_id, contact_id=her.id, now=now
            )
        session = Session.from_json(json.loads(stored)) if stored is not None else Session()
        courses = await self.courses.get(db.session)
        case = None
        if her.may_have_case:  # set when a case opened for her: most turns are not in one
            case = await intake.open_case_of(await db.session(), her.id)
            if case is None:  # staff closed it since her last turn
                her.change("may_have_case", False)
        if her.safe_hours is not None:  # only then can anything be held for her
            await deliver.release_held(await db.session(), her.id, now)  # her writing releases what waited
        inp = Input(inbound.text, inbound.button, inbound.media, inbound.channel)
        seen_case, counsellors = intake.as_seen_by_engine(case), self.counsellors(now)
        read_for: tuple[int | None] | None = None  # the course whose places were read; None: nothing read
        if catalogue.needs_live(self.flows, session.node):  # her numbers pick from what those figures show
            read_for = (session.course,)
            live = await db.session()
            courses = await catalogue.with_live(live, courses, contact_id=her.id, course_id=session.course)
        turn = step(self.flows, session, inp, now, courses=courses, case=seen_case, counsellors=counsellors)
        if catalogue.needs_live(self.flows, turn.session.node) and read_for != (turn.session.course,):
            # The screen she goes to shows places left or her standing: read them, and show it with them.
            course_id = turn.session.course
            live = await db.session()
            courses = await catalogue.with_live(live, courses, contact_id=her.id, course_id=course_id)
            turn = step(
                self.flows, session, inp, now, courses=courses, case=seen_case, counsellors=counsellors
            )
        if any(isinstance(e, EraseRequested) for e in turn.events):
            orm = await db.session()
            await effects.erase_her(orm, self.vault, await db.contact(her), address, now, flows=self.flows)
            if inbound.provider_id is not None:  # still drop a redelivery of this very message
                orm.add(Delivery(channel=inbound.channel, provider_id=inbound.provider_id, received_at=now))
            sealed = self.vault.seal(address)  # her contact, and its sealed address, are gone
            ids = await self._queue(db, None, inbound, sealed, turn, now, ephemeral=True)
            return Outcome(duplicate=False, contact_id=None, outbox_ids=ids, events=turn.events)
        await self._save(db, her, turn, now)
        case = await self._cases(db, her, case, session, inbound, turn, now)
        if inbound.message_id is not None and inbound.channel == "telegram":
            effects.remember_message(db, her.id, inbound.message_id, now)
        commands = await effects.apply(
            db,
            self.vault,
            her,
            turn.events,
            channel=inbound.channel,
            session=turn.session,
            now=now,
            simulated=inbound.simulated,
        )
        decided: tuple[Reply, ...] = ()
        closed = False
        if effects.store_decides_on(turn.events):
            decided, closed = await effects.store_decides(
                await db.session(),
                self.vault,
                self.flows,
                await db.contact(her),
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
        ids = await self._queue(db, her.id, inbound, her.address, turn, now, commands=commands)
        if case is not None:  # what the bot told her belongs to the transcript the counsellor reads
            orm = await db.session()
            for reply in turn.replies:
                transcript.add(orm, self.vault, case=case, author="bot", text=reply.text, now=now)
        return Outcome(duplicate=False, contact_id=her.id, outbox_ids=ids, events=turn.events)

    def counsellors(self, now: datetime) -> Counsellors:
        """Whether counsellors answer now, and when they are back (her time, "09:00") if not."""
        if self.service_hours.open_at(now):
            return Counsellors()
        back = self.service_hours.next_open(now).astimezone(DUSHANBE)
        return Counsellors(available=False, back_at=f"{back:%H:%M}")

    async def _cases(
        self,
        db: TurnDb,
        her: Her,
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
                        await db.session(),
                        contact=await db.contact(her),
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
                        await db.session(),
                        contact=await db.contact(her),
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
                    orm = await db.session()
                    await intake.her_words(orm, self.vault, case=case, text=text, media=media, now=now)
                    if case.status == "waiting":
                        case.acknowledged = True  # the engine has told her once; it will not again
                case CaseLeft() if case is not None:
                    why = "She left the chat." if not her.opted_out else "She stopped all messages."
                    orm = await db.session()
                    await intake.close_by_system(orm, self.vault, case=case, outcome="left", why=why, now=now)
                    case = None
                case SafeHoursSet(hours=hours):
                    her.change("safe_hours", hours)
                    turns.save_contact(db, her)
        if urgent_now and case is not None:
            text = alerts.NEW_URGENT.format(id=case.id)
            orm = await db.session()
            await alerts.alert(orm, self.vault, case=case, text=text, staff_chat=self.staff_chat, now=now)
        return case

    def _topics(self, session: Session) -> list[str]:
        """The topics she looked at before asking (topic ids, never her words), oldest first."""
        refs = (*session.history, session.node or "")
        return [topic for ref in refs if (node := self.flows.nodes.get(ref)) and (topic := node.topic)]

    async def _her(self, db: TurnDb, channel: Channel, address: str, now: datetime) -> tuple[Her, str | None]:
        """Her contact, locked for the turn (made on her first message), and her stored session."""
        fingerprint = self.vault.fingerprint(address)
        her, stored = await turns.her_contact_and_session(db, fingerprint)
        month = now.strftime("%Y-%m")
        if her is None:
            values = {
                "channel": channel,
                "fingerprint": fingerprint,
                "address": self.vault.seal(address),
                "pseudonym": self.new_token(),
                "pseudonym_month": month,
                "created_at": now,
            }
            return await turns.new_contact(db, values), None
        if her.pseudonym_month != month:
            # A new month, a new pseudonym: request-log rows of past months can no longer be linked to her.
            her.change("pseudonym", self.new_token())
            her.change("pseudonym_month", month)
        return her, stored

    async def _save(self, db: TurnDb, her: Her, turn: Turn, now: datetime) -> None:
        """Her session, and what she settled (language, district, letters, news, a stop) on her contact."""
        session = turn.session
        encoded = json.dumps(session.to_json(), ensure_ascii=False)
        turns.save_session(db, contact_id=her.id, state=encoded, now=now)
        for name in turns.SETTLED:
            her.change(name, getattr(session, name))
        turns.save_contact(db, her)

    async def _queue(
        self,
        db: TurnDb,
        contact_id: int | None,
        inbound: Inbound,
        sealed: bytes,
        turn: Turn,
        now: datetime,
        *,
        ephemeral: bool = False,
        commands: Sequence[dict[str, Any]] = (),
    ) -> tuple[int, ...]:
        """Her replies (and commands to her channel) into the outbox, to `sealed`: her address as sealed on
        her contact, sealed once for the turn."""
        if turn.session.opted_out and not any(isinstance(e, OptedOut) for e in turn.events):
            turn = replace(turn, replies=())  # nothing is sent to her after a stop word but its confirmation
        first = list(commands)
        if inbound.callback_query_id is not None:  # first, so her button stops spinning before the reply
            first.insert(
                0,
                telegram.answer_row(
                    self.vault,
                    contact_id=contact_id,
                    sealed_address=sealed,
                    callback_query_id=inbound.callback_query_id,
                    now=now,
                ),
            )
        rows = [
            outbox.values(
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
        return await turns.add_outbox(db, first + rows)


def wire(channel: Channel, reply: Reply, session: Session) -> dict[str, Any]:
    """A reply as its channel will send it."""
    if channel == "sms":
        return {"text": sms.render(reply, session.script)}
    return telegram.render(reply)


async def count_rows(db: AsyncSession, table: Any) -> int:
    """How many rows a table holds (for tests, reports and benchmarks)."""
    return int((await db.exec(select(sa.func.count()).select_from(table))).one())
