"""Alerts to staff: the console hears every urgent case through the feed; an optional Telegram staff
chat (HAMROH_STAFF_TELEGRAM_CHAT) gets "new urgent case #N" and nothing about her."""

from __future__ import annotations

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from bot import outbox
from bot.cases import feed
from bot.channels.simulated import is_simulated
from bot.store import Case, Contact
from bot.store.crypto import Vault, normalise_address

# Staff read these in the staff chat; they carry a case number, never her words or her address.
NEW_URGENT = "Hamroh: new urgent case #{id}. Open the console."
STILL_UNCLAIMED = "Hamroh: urgent case #{id} is still waiting ({minutes} min). Supervisors, please take it."
SILENT = "Hamroh: case #{id} has had no reply from staff for {minutes} min."


async def alert(
    db: AsyncSession, vault: Vault, *, case: Case, text: str, staff_chat: str | None, now: datetime
) -> None:
    """Tell the console (sound, notification) and the staff chat, if one is set.

    A case the simulator opened is the console's only: the real staff chat hears of real women alone.
    """
    case.alerted_at = now
    db.add(case)
    await feed.publish(db, "case_alert", case, now)
    if staff_chat and not await _simulated(db, vault, case):
        address = normalise_address("telegram", staff_chat)
        db.add(
            outbox.row(
                vault,
                contact_id=None,
                channel="telegram",
                sealed_address=vault.seal(address),
                body={"text": text},
                now=now,
            )
        )


async def _simulated(db: AsyncSession, vault: Vault, case: Case) -> bool:
    contact = await db.get(Contact, case.contact_id) if case.contact_id is not None else None
    return contact is not None and is_simulated(vault.open(contact.address))
