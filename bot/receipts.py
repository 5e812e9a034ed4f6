"""What providers tell us after the fact: delivery reports, and whether she can still be reached."""

from __future__ import annotations

import json
import logging

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import retention
from bot.announcements import outcomes
from bot.conversation.model import Channel, Session
from bot.service import Hamroh
from bot.store import Contact, ConversationState, OutboxMessage
from bot.store.crypto import normalise_address
from bot.store.db import transaction

log = logging.getLogger(__name__)
DELIVERY_STATES = (
    "queued",
    "accepted",
    "scheduled",
    "sending",
    "sent",
    "delivered",
    "partially_delivered",
    "undelivered",
    "failed",
    "canceled",
    "read",
    "receiving",
    "received",
)
CARRIER_OPT_OUT = "21610"  # Twilio: the recipient has replied STOP to this sender (carrier-level opt-out)


async def delivery_report(hamroh: Hamroh, *, provider_id: str, status: str, error_code: str | None) -> bool:
    """Record a provider's delivery status for the message it sent; False when no such message is known."""
    if status not in DELIVERY_STATES:
        raise ValueError(f"unknown delivery status {status!r}")
    async with transaction(hamroh.engine) as db:
        message = (
            await db.exec(select(OutboxMessage).where(OutboxMessage.provider_id == provider_id))
        ).first()
        if message is None:
            return False  # erased since, or not ours: nothing to record
        message.delivery, message.error_code = status, (error_code or None)
        db.add(message)
        if message.ephemeral:  # the erase confirmation: once delivered, it goes at Twilio too
            await retention.delivery_reported(db, hamroh.vault, message, status, hamroh.clock())
        if error_code == CARRIER_OPT_OUT and message.contact_id is not None:
            await opt_out(db, message.contact_id)
        if message.announcement_text_id is not None and message.id is not None:
            await outcomes.delivery_reported(
                db, outbox_id=message.id, status=status, error_code=error_code, now=hamroh.clock()
            )
    return True


async def reachable(hamroh: Hamroh, *, channel: Channel, address: str, can_reach: bool) -> None:
    """She blocked the bot (nothing more is sent to her) or unblocked it (she may receive again)."""
    fingerprint = hamroh.vault.fingerprint(normalise_address(channel, address))
    async with transaction(hamroh.engine) as db:
        contact = (await db.exec(select(Contact).where(Contact.fingerprint == fingerprint))).first()
        if contact is not None:
            contact.reachable = can_reach
            db.add(contact)


async def opt_out(db: AsyncSession, contact_id: int) -> None:
    """She is opted out on this channel: her contact and her session say so."""
    contact = await db.get(Contact, contact_id)
    state = await db.get(ConversationState, contact_id)
    if contact is not None:
        contact.opted_out = True
        db.add(contact)
    if state is not None:
        session = Session.from_json(json.loads(state.state))
        state.state = json.dumps({**session.to_json(), "opted_out": True}, ensure_ascii=False)
        db.add(state)
