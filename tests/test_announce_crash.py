"""An announcement to a few thousand women, its dispatcher killed mid-send: every one receives it once,
except the sends in flight at the kill, which are in doubt, counted, and never sent again.

The real `hamroh dispatch` process sends through python-telegram-bot and the twilio SDK to the fake Bot API
and the fake Twilio of tests/fakes (rate limits raised); it is SIGKILLed while the fake Bot API holds a
request open, then started again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from bot.announcements import drafts
from bot.announcements.audience import Audience
from bot.config import Settings
from bot.conversation.flows import FlowSet
from bot.service import Hamroh
from bot.store import AnnouncementRecipient, Contact, OutboxMessage
from bot.store.crypto import Vault
from bot.store.db import create_engine, transaction
from tests import test_crash as crash_test
from tests.conftest import Clock, Tokens
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.twilio_api import FakeTwilio
from tests.test_announce_audience import TEXT, Woman, add_staff, add_women
from tests.test_crash import wait_until

ON_TELEGRAM = 1600
BY_SMS = 400
FROM = "+15005550006"


async def announce(url: str, flows: FlowSet, vault: Vault, clock: Clock) -> int:
    """Women who asked for news, and an announcement to all of them, sent now (enqueued at once)."""
    engine = create_engine(url)
    hamroh = Hamroh(engine=engine, flows=flows, vault=vault, clock=clock, new_token=Tokens())
    try:
        await add_women(hamroh, [Woman(topics=("events",))] * ON_TELEGRAM)
        await add_women(hamroh, [Woman(channel="sms", topics=("events",))] * BY_SMS, first=ON_TELEGRAM)
        (author,) = await add_staff(hamroh, "malika")
        settings = Settings(announce_quiet_hours="")
        async with transaction(engine) as db:
            announcement, _ = await drafts.create(
                db, vault, flows, settings, staff=author, text=TEXT, audience=Audience(), now=clock()
            )
            assert announcement.id is not None
            await drafts.send(
                db,
                vault,
                flows,
                settings,
                announcement_id=announcement.id,
                staff=author,
                at=None,
                override_reason=None,
                now=clock(),
            )
            return announcement.id
    finally:
        await engine.dispose()


async def outcomes(url: str, vault: Vault) -> dict[str, str]:
    """Each recipient's outcome, by her address (opened here, in the test, to compare with the fakes)."""
    engine = create_engine(url)
    recipients = AnnouncementRecipient.__table__  # type: ignore[attr-defined]
    contacts = Contact.__table__  # type: ignore[attr-defined]
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    sa.select(contacts.c.address, recipients.c.outcome).join(
                        contacts, contacts.c.id == recipients.c.contact_id
                    )
                )
            ).all()
        return {vault.open(address): outcome for address, outcome in rows}
    finally:
        await engine.dispose()


async def counted(url: str, announcement_id: int) -> tuple[dict[str, int], int]:
    """The page's counts, and the bulk outbox rows marked in doubt."""
    engine = create_engine(url)
    try:
        async with transaction(engine) as db:
            counts = await drafts.counts(db, announcement_id=announcement_id)
            doubted = (
                await (await db.connection()).execute(
                    sa.select(sa.func.count()).where(OutboxMessage.in_doubt, OutboxMessage.kind == "bulk")  # type: ignore[arg-type]
                )
            ).scalar_one()
        return counts, int(doubted)
    finally:
        await engine.dispose()


def dispatcher(
    url: str, telegram: FakeTelegram, twilio: FakeTwilio, tmp_path: Path
) -> subprocess.Popen[bytes]:
    return crash_test.dispatcher(
        url,
        telegram,
        tmp_path,
        HAMROH_TELEGRAM_MESSAGES_PER_SECOND="3000",
        HAMROH_TELEGRAM_CHAT_MESSAGES_PER_SECOND="3000",
        HAMROH_TWILIO_ACCOUNT_SID=twilio.account_sid,
        HAMROH_TWILIO_AUTH_TOKEN=twilio.auth_token,
        HAMROH_TWILIO_FROM=FROM,
        HAMROH_TWILIO_API_URL=twilio.api_url,
        HAMROH_TWILIO_SEGMENTS_PER_SECOND="3000",
    )


def test_killed_mid_announcement_every_woman_receives_it_once_and_in_doubt_ones_are_counted(
    database_url: str, flows: FlowSet, vault: Vault, clock: Clock, tmp_path: Path
) -> None:
    announcement_id = asyncio.run(announce(database_url, flows, vault, clock))
    with FakeTelegram() as telegram, FakeTwilio() as twilio:
        first = dispatcher(database_url, telegram, twilio, tmp_path)
        try:
            wait_until(lambda: len(telegram.calls_to("sendMessage")) >= ON_TELEGRAM // 3)
            telegram.hang(times=1)  # the next request is held open...
            wait_until(lambda: any(c.status is None for c in telegram.calls_to("sendMessage")))
            os.kill(first.pid, signal.SIGKILL)  # ...and the process dies at that moment
            first.wait(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
        at_kill = asyncio.run(counted(database_url, announcement_id))[0]
        assert at_kill["queued"] > 0, "the kill came before the end"
        telegram.release()

        second = dispatcher(database_url, telegram, twilio, tmp_path)
        try:

            def settled() -> bool:
                counts = asyncio.run(counted(database_url, announcement_id))[0]
                return counts["queued"] == 0 and counts["held"] == 0

            wait_until(settled, seconds=180)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
        received = Counter(f"tg:{c.chat_id}" for c in telegram.calls_to("sendMessage") if c.status == 200)
        received.update(m.to for m in twilio.messages)
        bodies = {c.text for c in telegram.calls_to("sendMessage")} | {m.body for m in twilio.messages}

    outcome = asyncio.run(outcomes(database_url, vault))
    counts, doubted = asyncio.run(counted(database_url, announcement_id))
    assert len(outcome) == ON_TELEGRAM + BY_SMS
    assert bodies == {TEXT["tg"]}
    in_doubt = {address for address, o in outcome.items() if o == "in_doubt"}
    assert in_doubt, "something was in flight at the kill"
    assert {o for o in outcome.values()} == {"sent", "in_doubt"}
    assert all(received[address] == 1 for address, o in outcome.items() if o == "sent"), "sent once"
    assert all(received[address] <= 1 for address in in_doubt), "in doubt: never sent again"
    assert set(received) <= set(outcome), "nobody else"
    assert counts["in_doubt"] == len(in_doubt) == doubted  # counted on the page and in the outbox
    assert counts["sent"] + counts["in_doubt"] == ON_TELEGRAM + BY_SMS
