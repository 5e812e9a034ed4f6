"""What a turn's events do to the store: the request log, commands for the channels, erasure."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import outbox
from bot.announcements import enrolment, subscriptions
from bot.cases import intake
from bot.channels.simulated import is_simulated
from bot.conversation import screens
from bot.conversation.flows import FlowSet
from bot.conversation.model import (
    CancelRequested,
    Channel,
    ClearChatRequested,
    Course,
    EnrolRequested,
    EscalationRequested,
    Event,
    NewsChanged,
    Reply,
    Session,
    TopicViewed,
)
from bot.store import ChatMessage, Contact, Delivery, OutboxMessage, RequestLogEntry, erase
from bot.store.crypto import Vault
from bot.store.direct import direct
from bot.store.turns import Her, TurnDb

CLEARABLE = timedelta(hours=48)  # Telegram lets a bot delete messages of the last 48 hours only
TWILIO_SID = re.compile(r"(SM|MM)[0-9a-fA-F]{32}")


async def apply(
    db: TurnDb,
    vault: Vault,
    her: Her,
    events: Sequence[Event],
    *,
    channel: Channel,
    session: Session,
    now: datetime,
    simulated: bool = False,
) -> list[dict[str, Any]]:
    """Record what happened: topics and escalations (anonymously). Returns the commands to her channel it
    decided (outbox values, to leave before the turn's replies)."""
    hour = now.replace(minute=0, second=0, microsecond=0)

    log: list[dict[str, object]] = []
    commands: list[dict[str, Any]] = []

    def logged(topic: str) -> None:
        log.append(
            {
                "hour": hour,
                "topic": topic,
                "channel": channel,
                "lang": session.lang,
                "district": session.district,
                "pseudonym": her.pseudonym,
            }
        )

    for event in events:
        match event:
            case TopicViewed(topic=topic):
                logged(topic)
            case EscalationRequested(queue=queue):
                logged(f"escalation.{queue}")  # the case itself is opened by the service
            case ClearChatRequested() if channel == "telegram":
                ids = await clearable_message_ids(db, her.id, now)
                commands.append(
                    outbox.values(
                        vault,
                        contact_id=her.id,
                        channel=channel,
                        sealed_address=her.address,
                        body={"op": "clear_chat", "message_ids": ids},
                        now=now,
                        kind="command",
                        simulated=simulated,
                    )
                )

    if log:  # one statement, with the turn's next: most turns open a topic
        db.later(_LOG, log)
    return commands


def store_decides_on(events: Sequence[Event]) -> bool:
    """Whether `store_decides` has anything to do for these events (most turns: no)."""
    return any(isinstance(e, NewsChanged | EnrolRequested | CancelRequested) for e in events)


async def store_decides(
    db: AsyncSession,
    vault: Vault,
    flows: FlowSet,
    contact: Contact,
    events: Sequence[Event],
    *,
    session: Session,
    courses: Sequence[Course],
    channel: Channel,
    address: str,
    now: datetime,
) -> tuple[tuple[Reply, ...], bool]:
    """Her news topics, her enrolments and cancellations, applied in the turn's transaction; and the
    replies that say what the store decided (a place, the waiting list, ...). The flag is True when a
    course turned out closed, so the courses are to be read again."""
    assert contact.id is not None
    replies: list[Reply] = []
    closed = False
    for event in events:
        match event:
            case NewsChanged(topics=topics):
                await subscriptions.set_topics(db, contact, topics, now)
            case EnrolRequested(course=course_id, details=details, share_address=share_address):
                shared = dict(details)
                if share_address:
                    shared["phone"] = (
                        address  # on SMS her address is her phone number: she agreed to share it
                    )
                outcome = await enrolment.enrol(
                    db, vault, course_id=course_id, contact_id=contact.id, details=shared, now=now
                )
                closed = closed or outcome == "closed"
                course = next((c for c in courses if c.id == course_id), None)
                replies.append(screens.enrolment_outcome(flows, session, outcome, course, channel))
            case CancelRequested(course=course_id):
                done = await enrolment.cancel(
                    db, vault, flows, course_id=course_id, contact_id=contact.id, now=now
                )
                course = next((c for c in courses if c.id == course_id), None)
                said = "cancelled" if done else "not_enrolled"
                replies.append(screens.enrolment_outcome(flows, session, said, course, channel))
    return tuple(replies), closed


async def clearable_message_ids(db: TurnDb, contact_id: int, now: datetime) -> list[int]:
    """Her chat's message ids (hers and the bot's) from the last 48 hours, oldest first."""
    query = (
        sa.select(_CHAT.c.message_id)
        .where(_CHAT.c.contact_id == contact_id, _CHAT.c.at > now - CLEARABLE)
        .order_by(_CHAT.c.message_id)
    )
    return list((await db.run(query, {})).scalars())


async def erase_her(
    db: AsyncSession,
    vault: Vault,
    contact: Contact,
    address: str,
    now: datetime,
    *,
    flows: FlowSet | None = None,
) -> None:
    """Delete everything about her; and ask Twilio to delete her SMS, so they do not live on there.

    With `flows`, her places on courses are given up first, each to the next woman waiting (who is told);
    retention erases only women whose courses have ended, where no place can move up.
    """
    assert contact.id is not None
    if flows is not None:
        await enrolment.give_up_all(db, vault, flows, contact_id=contact.id, now=now)
    sent = select(OutboxMessage.provider_id).where(
        OutboxMessage.contact_id == contact.id, OutboxMessage.channel == "sms"
    )
    received = select(Delivery.provider_id).where(
        Delivery.contact_id == contact.id, Delivery.channel == "sms"
    )
    sids = sorted(
        {
            sid
            for sid in [*(await db.exec(sent)).all(), *(await db.exec(received)).all()]
            if sid and TWILIO_SID.fullmatch(sid)
        }
    )
    await intake.empty_for_erasure(db, contact.id, now)  # the case stays, closed and empty
    await erase.everything(db, contact.id)
    if sids:
        db.add(
            outbox.row(
                vault,
                contact_id=None,
                channel="sms",
                sealed_address=vault.seal(address),
                body={"op": "delete_sms", "sids": sids},
                now=now,
                kind="command",
                ephemeral=True,
                simulated=is_simulated(address),
            )
        )


_CHAT = ChatMessage.__table__  # type: ignore[attr-defined]
_LOG = direct(sa.insert(RequestLogEntry.__table__))  # type: ignore[attr-defined]
_REMEMBER = direct(sa.insert(_CHAT))  # every Telegram turn runs it


def remember_message(db: TurnDb, contact_id: int, message_id: int, now: datetime) -> None:
    """Keep a Telegram message id of her chat for 48 hours, so "Clear this chat" can delete it."""
    db.later(_REMEMBER, {"contact_id": contact_id, "message_id": message_id, "at": now})
