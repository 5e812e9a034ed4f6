"""Messages to her from people (counsellors, alerts about her case): through the outbox, on her channel,
in the letters she chose, and held until her safe hours unless she has just written or staff chose
"send now" (audited by the caller).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import outbox
from bot.channels import sms, telegram
from bot.channels.simulated import is_simulated
from bot.conversation import hours
from bot.conversation.model import SCRIPTS, Channel, Reply, Script
from bot.store import Contact, OutboxMessage
from bot.store.crypto import Vault


def body_for(channel: Channel, text: str, script: Script) -> dict[str, Any]:
    """A plain message (no options) as her channel sends it."""
    reply = Reply(text)
    return {"text": sms.render(reply, script)} if channel == "sms" else telegram.render(reply)


def safe_from(contact: Contact, now: datetime) -> datetime:
    """When a message to her may leave: now, or the start of her next safe hours."""
    try:
        window = hours.parse(contact.safe_hours)
    except hours.HoursError:  # stored hours are validated when set; never hold a message on a bad value
        return now
    return window.next_open(now)


def to_her(
    vault: Vault,
    *,
    contact: Contact,
    text: str,
    now: datetime,
    kind: str = "reply",
    send_now: bool = False,
) -> OutboxMessage:
    """An outbox row to her (not yet added): held until her safe hours unless `send_now`.

    To a simulated contact the row is the simulator's: it never leaves through a real channel.
    """
    assert contact.id is not None
    channel: Channel = "sms" if contact.channel == "sms" else "telegram"
    script: Script = next((s for s in SCRIPTS if s == contact.script), "cyrillic")
    row = outbox.row(
        vault,
        contact_id=contact.id,
        channel=channel,
        sealed_address=contact.address,
        body=body_for(channel, text, script),
        now=now,
        kind=kind,
        simulated=is_simulated(vault.open(contact.address)),  # the simulator reads it; no channel sends it
    )
    leave_at = now if send_now else safe_from(contact, now)
    if leave_at > now:
        row.held, row.next_attempt_at = True, leave_at
    return row


async def release_held(db: AsyncSession, contact_id: int, now: datetime) -> int:
    """Let everything held for her leave now (she has just written, or staff chose "send now")."""
    result = await db.exec(
        sa.update(OutboxMessage)
        .where(col(OutboxMessage.contact_id) == contact_id, col(OutboxMessage.held))
        .values(held=False, next_attempt_at=now)
    )
    return int(result.rowcount or 0)
