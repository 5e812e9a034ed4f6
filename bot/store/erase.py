"""Erasing a woman: everything that points to her goes, in the caller's transaction.

Request-log rows stay (they hold a monthly pseudonym, and the pseudonym goes with her contact row, so
they no longer point to anyone). So do the rows that count who an announcement went to, pointing to
nobody: a coordinator's counts do not change when she leaves.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.store import (
    AnnouncementRecipient,
    ChatMessage,
    Contact,
    ConversationState,
    Delivery,
    Enrolment,
    OutboxMessage,
    Subscription,
)

# Children first: every table holding her contact id, then the contact itself. Cases are emptied, not
# deleted, beforehand (bot.cases.intake.empty_for_erasure): staff must see that she erased her data.
# Her places on courses are given up beforehand too (bot.announcements.enrolment.give_up_all), so that
# the next woman waiting moves up.
_TABLES_WITH_CONTACT = (OutboxMessage, Delivery, ConversationState, ChatMessage, Subscription, Enrolment)


async def everything(db: AsyncSession, contact_id: int) -> None:
    """Delete the contact and every row that refers to her (sent messages too)."""
    for table in _TABLES_WITH_CONTACT:
        await db.exec(sa.delete(table).where(col(table.contact_id) == contact_id))
    await db.exec(
        sa.update(AnnouncementRecipient)
        .where(col(AnnouncementRecipient.contact_id) == contact_id)
        .values(contact_id=None)
    )
    await db.exec(sa.delete(Contact).where(col(Contact.id) == contact_id))
