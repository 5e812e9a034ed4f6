"""Announcements on their way: enqueued set-based, sent by the dispatcher as bulk, each outcome recorded."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import col, select

from bot import outbox, receipts
from bot.announcements import drafts, enqueue, scheduler
from bot.announcements.audience import Audience
from bot.channels import sms, telegram
from bot.config import Settings
from bot.conversation.model import Reply
from bot.conversation.text import to_latin, to_plain_cyrillic
from bot.dispatcher import Dispatcher, Limits
from bot.runtime import run_case_jobs
from bot.senders import Failed, Outgoing, Sent
from bot.service import Hamroh
from bot.store import Announcement, AnnouncementRecipient, AnnouncementText, Contact, OutboxMessage, Staff
from bot.store.db import transaction
from tests.conftest import settings_for_tests
from tests.test_announce_audience import TEXT, Woman, add_staff, add_women
from tests.test_dispatcher import FAST, RecordingSender, make, run_until_settled

NOW_SETTINGS = Settings(announce_quiet_hours="")
SAFE_EVENING = "18-21"  # Dushanbe; the tests' clock says 14:00 there (09:00 UTC)


async def announce(
    hamroh: Hamroh,
    *,
    at: datetime | None = None,
    audience: Audience | None = None,
    author: Staff | None = None,
) -> tuple[int, int]:
    """A draft written and sent (now, or scheduled for `at`) in one transaction: its id and audience."""
    if author is None:
        (author,) = await add_staff(hamroh, f"malika{hamroh.clock().timestamp():.0f}")
    async with transaction(hamroh.engine) as db:
        draft, _ = await drafts.create(
            db,
            hamroh.vault,
            hamroh.flows,
            NOW_SETTINGS,
            staff=author,
            text=TEXT,
            audience=audience or Audience(),
            now=hamroh.clock(),
        )
        assert draft.id is not None
        sent = await drafts.send(
            db,
            hamroh.vault,
            hamroh.flows,
            NOW_SETTINGS,
            announcement_id=draft.id,
            staff=author,
            at=at,
            override_reason=None,
            now=hamroh.clock(),
        )
        return draft.id, sent.audience_size


async def send_now(hamroh: Hamroh, audience: Audience | None = None) -> int:
    announcement_id, _ = await announce(hamroh, audience=audience)
    return announcement_id


async def counts(hamroh: Hamroh, announcement_id: int) -> dict[str, int]:
    async with transaction(hamroh.engine) as db:
        every = await drafts.counts(db, announcement_id=announcement_id)
    return {k: v for k, v in every.items() if v}


async def bulk_rows(hamroh: Hamroh) -> list[OutboxMessage]:
    async with transaction(hamroh.engine) as db:
        query = select(OutboxMessage).where(OutboxMessage.kind == "bulk").order_by(col(OutboxMessage.id))
        return list((await db.exec(query)).all())


async def test_sending_now_enqueues_everyone_once_with_the_text_sealed_per_language_and_letters(
    hamroh: Hamroh,
) -> None:
    ids = await add_women(
        hamroh,
        [
            Woman(),
            Woman(lang="ru"),
            Woman(channel="sms", script="latin"),
            Woman(channel="sms", script="plain", lang="ru"),
            Woman(safe_hours=SAFE_EVENING),
            Woman(topics=()),  # never asked for news
        ],
    )
    announcement_id = await send_now(hamroh)
    assert await counts(hamroh, announcement_id) == {"queued": 4, "held": 1}
    rows = await bulk_rows(hamroh)
    assert [r.contact_id for r in rows] == ids[:5]
    assert {(r.address, r.body, r.priority, r.status) for r in rows} == {
        (b"", b"", outbox.BULK_PRIORITY, "queued")
    }
    evening = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)  # 18:00 in Dushanbe
    assert [(r.held, r.next_attempt_at) for r in rows] == [(False, hamroh.clock())] * 4 + [(True, evening)]
    async with transaction(hamroh.engine) as db:
        texts = {t.id: t for t in (await db.exec(select(AnnouncementText))).all()}
        recipients = (
            await db.exec(select(AnnouncementRecipient).order_by(col(AnnouncementRecipient.id)))
        ).all()
        announcement = await db.get(Announcement, announcement_id)
    assert announcement is not None
    assert (announcement.status, announcement.audience_size) == ("sending", 5)
    assert len(texts) == 8  # tg and ru, each for Telegram and for SMS in three letters choices
    assert [r.outbox_id for r in recipients] == [r.id for r in rows]
    assert [(r.channel, r.lang) for r in recipients] == [
        ("telegram", "tg"),
        ("telegram", "ru"),
        ("sms", "tg"),
        ("sms", "ru"),
        ("telegram", "tg"),
    ]
    opened = [json.loads(hamroh.vault.open(texts[r.announcement_text_id or 0].body)) for r in rows]
    assert opened[0] == telegram.render(Reply(TEXT["tg"]))
    assert opened[1] == telegram.render(Reply(TEXT["ru"]))
    assert opened[2] == {"text": sms.render(Reply(TEXT["tg"]), "latin")} == {"text": to_latin(TEXT["tg"])}
    assert opened[3] == {"text": to_plain_cyrillic(TEXT["ru"])}

    async with transaction(hamroh.engine) as db:  # a second run (after a crash, say) adds nobody twice
        announcement = await db.get(Announcement, announcement_id)
        assert announcement is not None
        assert await enqueue.enqueue(db, hamroh.vault, hamroh.flows, announcement, now=hamroh.clock()) == 5
    assert len(await bulk_rows(hamroh)) == 5
    await add_women(hamroh, [Woman()], first=100)  # subscribed since: a re-run reaches her too, once
    async with transaction(hamroh.engine) as db:
        announcement = await db.get(Announcement, announcement_id)
        assert announcement is not None
        assert await enqueue.enqueue(db, hamroh.vault, hamroh.flows, announcement, now=hamroh.clock()) == 6
    assert len(await bulk_rows(hamroh)) == 6


async def test_the_dispatcher_sends_each_once_and_records_what_became_of_her(hamroh: Hamroh) -> None:
    ids = await add_women(
        hamroh,
        [
            Woman(),
            Woman(lang="ru"),
            Woman(),  # blocks the bot before her turn comes
            Woman(),  # opts out after it was queued
            Woman(channel="sms", script="latin"),
            Woman(safe_hours=SAFE_EVENING),
        ],
    )
    announcement_id = await send_now(hamroh)
    async with transaction(hamroh.engine) as db:
        late = await db.get(Contact, ids[3])
        assert late is not None
        late.opted_out = True
        db.add(late)
    blocked_by = hamroh.vault.open((await _contact(hamroh, ids[2])).address)

    def answer(message: Outgoing) -> Failed | Sent:
        if message.address == blocked_by:
            return Failed("forbidden (403): bot was blocked by the user", unreachable=True)
        return Sent((str(500 + message.id),))

    telegram_sender = RecordingSender(channel="telegram", answers=[answer] * 10)
    sms_sender = RecordingSender(channel="sms", credential="AC1", answers=[lambda m: Sent(("SM1",))])
    dispatcher = Dispatcher(
        engine=hamroh.engine,
        vault=hamroh.vault,
        senders=[telegram_sender, sms_sender],
        limits=FAST,
        clock=hamroh.clock,
        poll_interval=0.01,
    )
    await run_until_settled(dispatcher, hamroh.engine)
    assert await counts(hamroh, announcement_id) == {"sent": 3, "blocked": 2, "held": 1}
    assert sorted(m.address for m in telegram_sender.sent) == sorted([f"tg:{7000000 + n}" for n in (0, 1, 2)])
    assert {m.kind for m in telegram_sender.sent} == {"bulk"}
    assert sorted(m.body["text"] for m in telegram_sender.sent) == sorted(
        [TEXT["tg"], TEXT["ru"], TEXT["tg"]]
    )
    assert [(m.address, m.body) for m in sms_sender.sent] == [
        ("+992900000004", {"text": to_latin(TEXT["tg"])})
    ]
    assert not (await _contact(hamroh, ids[2])).reachable

    # Twilio's delivery report moves her to delivered; her safe hours open and the held one leaves.
    assert await receipts.delivery_report(hamroh, provider_id="SM1", status="delivered", error_code=None)
    hamroh.clock.advance(hours=4)  # type: ignore[attr-defined]
    await run_until_settled(dispatcher, hamroh.engine)
    assert await counts(hamroh, announcement_id) == {"sent": 3, "delivered": 1, "blocked": 2}
    assert len(telegram_sender.sent) == 4
    async with transaction(hamroh.engine) as db:
        done = await scheduler.tick(db, hamroh.vault, hamroh.flows, now=hamroh.clock())
        assert done.finished == 1
        announcement = await db.get(Announcement, announcement_id)
        assert announcement is not None
        assert announcement.status == "sent"


async def test_sends_in_flight_at_a_crash_are_in_doubt_and_not_sent_again(hamroh: Hamroh) -> None:
    await add_women(hamroh, [Woman(), Woman(), Woman()])
    announcement_id = await send_now(hamroh)
    died = make(hamroh.engine, hamroh.vault, hamroh.clock, RecordingSender())
    assert len(await died.claim({"telegram"}, 2)) == 2  # ...and the process was killed mid-send
    sender = RecordingSender()
    successor = make(hamroh.engine, hamroh.vault, hamroh.clock, sender)
    await run_until_settled(successor, hamroh.engine)
    assert len(sender.sent) == 1
    assert successor.counts.in_doubt_held == 2
    assert await counts(hamroh, announcement_id) == {"in_doubt": 2, "sent": 1}


async def test_cancel_stops_what_has_not_left(hamroh: Hamroh) -> None:
    await add_women(hamroh, [Woman(), Woman(), Woman(safe_hours=SAFE_EVENING)])
    announcement_id = await send_now(hamroh)
    dispatcher = make(hamroh.engine, hamroh.vault, hamroh.clock, RecordingSender())
    (in_flight,) = await dispatcher.claim({"telegram"}, 1)
    (author,) = await add_staff(hamroh, "nigora")
    async with transaction(hamroh.engine) as db:
        cancelled = await drafts.cancel(db, announcement_id=announcement_id, staff=author, now=hamroh.clock())
        assert cancelled.status == "cancelled"
    assert [r.id for r in await bulk_rows(hamroh)] == [in_flight.id]  # the one in flight finishes
    assert await counts(hamroh, announcement_id) == {"queued": 1, "cancelled": 2}
    await dispatcher._record(in_flight, Sent(("900",)))
    assert await counts(hamroh, announcement_id) == {"sent": 1, "cancelled": 2}
    hamroh.clock.advance(hours=5)  # type: ignore[attr-defined]
    sender = RecordingSender()
    await run_until_settled(make(hamroh.engine, hamroh.vault, hamroh.clock, sender), hamroh.engine)
    assert sender.sent == []


async def test_a_scheduled_announcement_is_enqueued_when_its_time_comes_once_across_processes(
    hamroh: Hamroh,
) -> None:
    await add_women(hamroh, [Woman(), Woman(lang="ru")])
    (author,) = await add_staff(hamroh, "malika")
    at = hamroh.clock() + timedelta(hours=1)
    await announce(hamroh, at=at, author=author)
    every = timedelta(seconds=30)
    idle = await scheduler.run_if_due(
        hamroh.engine, hamroh.vault, hamroh.flows, every=every, now=hamroh.clock()
    )
    assert idle is not None
    assert not idle
    assert await bulk_rows(hamroh) == []
    hamroh.clock.advance(hours=1)  # type: ignore[attr-defined]
    done = await scheduler.run_if_due(
        hamroh.engine, hamroh.vault, hamroh.flows, every=every, now=hamroh.clock()
    )
    assert done is not None
    assert (done.enqueued, done.recipients) == (1, 2)
    again = await scheduler.run_if_due(
        hamroh.engine, hamroh.vault, hamroh.flows, every=every, now=hamroh.clock()
    )
    assert again is None  # another process ran it less than `every` ago
    assert len(await bulk_rows(hamroh)) == 2


async def test_her_reply_does_not_wait_behind_her_announcement(hamroh: Hamroh) -> None:
    (her,) = await add_women(hamroh, [Woman(safe_hours=SAFE_EVENING)])
    await send_now(hamroh)  # held until her evening
    async with transaction(hamroh.engine) as db:
        contact = await db.get(Contact, her)
        assert contact is not None
        row = outbox.row(
            hamroh.vault,
            contact_id=her,
            channel="telegram",
            sealed_address=contact.address,
            body={"text": "reply"},
            now=hamroh.clock(),
        )
        await outbox.add(db, [row])
    sender = RecordingSender()
    await run_until_settled(make(hamroh.engine, hamroh.vault, hamroh.clock, sender), hamroh.engine)
    assert [m.body["text"] for m in sender.sent] == ["reply"]


async def test_a_woman_who_erased_her_data_before_her_turn_is_blocked(hamroh: Hamroh) -> None:
    ids = await add_women(hamroh, [Woman(), Woman(safe_hours=SAFE_EVENING)])
    announcement_id = await send_now(hamroh)
    async with transaction(hamroh.engine) as db:
        contact = await db.get(Contact, ids[1])
        await db.delete(contact)
    async with transaction(hamroh.engine) as db:
        done = await scheduler.tick(db, hamroh.vault, hamroh.flows, now=hamroh.clock())
    assert done.gone == 1
    assert await counts(hamroh, announcement_id) == {"queued": 1, "blocked": 1}


async def _contact(hamroh: Hamroh, contact_id: int) -> Contact:
    async with transaction(hamroh.engine) as db:
        contact = await db.get(Contact, contact_id)
        assert contact is not None
        return contact


async def test_women_counted_when_it_was_scheduled_who_stopped_since_are_blocked(hamroh: Hamroh) -> None:
    ids = await add_women(hamroh, [Woman(), Woman(), Woman(), Woman(), Woman(safe_hours=SAFE_EVENING)])
    (author,) = await add_staff(hamroh, "malika")
    at = hamroh.clock() + timedelta(hours=2)
    announcement_id, audience_size = await announce(hamroh, at=at, author=author)
    assert audience_size == 5
    assert await counts(hamroh, announcement_id) == {}  # counted, but nobody is queued before its time
    assert await bulk_rows(hamroh) == []
    async with transaction(hamroh.engine) as db:
        stopped, blocked_bot, erased = [await db.get(Contact, i) for i in ids[:3]]
        assert stopped is not None
        assert blocked_bot is not None
        stopped.opted_out, blocked_bot.reachable = True, False
        db.add_all([stopped, blocked_bot])
        await db.delete(erased)
    newcomer = await add_women(hamroh, [Woman()], first=50)  # asked for news meanwhile: she receives it too
    hamroh.clock.advance(hours=2)  # type: ignore[attr-defined]
    async with transaction(hamroh.engine) as db:
        done = await scheduler.tick(db, hamroh.vault, hamroh.flows, now=hamroh.clock())
    assert (done.enqueued, done.recipients) == (1, 6)
    assert await counts(hamroh, announcement_id) == {"queued": 2, "held": 1, "blocked": 3}
    rows = await bulk_rows(hamroh)
    assert sorted(r.contact_id or 0 for r in rows) == [*ids[3:], *newcomer]
    async with transaction(hamroh.engine) as db:
        recipients = (await db.exec(select(AnnouncementRecipient))).all()
    assert {r.outbox_id for r in recipients if r.outcome != "blocked"} == {r.id for r in rows}


async def test_sms_waiting_their_turn_do_not_hold_up_telegram(hamroh: Hamroh) -> None:
    async with transaction(hamroh.engine) as db:
        rows = []
        for n in range(40):  # an announcement's rows, the channels interleaved as enqueued
            for channel, address in (("sms", f"+99290{n:07d}"), ("telegram", f"tg:{8000 + n}")):
                rows.append(
                    outbox.row(
                        hamroh.vault,
                        contact_id=None,
                        channel=channel,  # type: ignore[arg-type]
                        sealed_address=hamroh.vault.seal(address),
                        body={"text": "news"},
                        now=hamroh.clock(),
                        kind="bulk",
                    )
                )
        await outbox.add(db, rows)
    telegram_sender = RecordingSender(channel="telegram")
    sms_sender = RecordingSender(channel="sms", credential="AC1")
    dispatcher = Dispatcher(
        engine=hamroh.engine,
        vault=hamroh.vault,
        senders=[telegram_sender, sms_sender],
        limits=Limits(per_second={"telegram": 1000.0, "sms": 1.0}, per_chat_gap={}),  # one SMS a second
        clock=hamroh.clock,
        poll_interval=0.01,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    for _ in range(300):
        if len(telegram_sender.sent) == 40:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await task
    assert len(telegram_sender.sent) == 40  # within 3 s, though 40 SMS wait a second each
    assert len(sms_sender.sent) <= 4


async def test_twilio_reports_move_her_to_delivered_failed_or_blocked(hamroh: Hamroh) -> None:
    await add_women(hamroh, [Woman(channel="sms")] * 3)
    announcement_id = await send_now(hamroh)
    sids = iter(("SM1", "SM2", "SM3"))
    sender = RecordingSender(channel="sms", credential="AC1", answers=[lambda m: Sent((next(sids),))] * 3)
    await run_until_settled(make(hamroh.engine, hamroh.vault, hamroh.clock, sender), hamroh.engine)
    assert await counts(hamroh, announcement_id) == {"sent": 3}
    for sid, status, code in [
        ("SM1", "delivered", None),
        ("SM2", "undelivered", "30003"),
        ("SM3", "failed", "21610"),  # she had replied STOP at the carrier
        ("SM1", "sent", None),  # a late, older word changes nothing
    ]:
        assert await receipts.delivery_report(hamroh, provider_id=sid, status=status, error_code=code)
    assert await counts(hamroh, announcement_id) == {"delivered": 1, "failed": 1, "blocked": 1}


async def test_one_announcement_that_cannot_be_enqueued_does_not_stop_the_others(hamroh: Hamroh) -> None:
    await add_women(hamroh, [Woman(), Woman()])
    (author,) = await add_staff(hamroh, "malika")
    at = hamroh.clock() + timedelta(minutes=5)
    ids = []
    for _ in range(2):
        announcement_id, _ = await announce(hamroh, at=at, author=author)
        ids.append(announcement_id)
    async with transaction(hamroh.engine) as db:
        broken = await db.get(Announcement, ids[0])
        assert broken is not None
        broken.audience = "{not json"
        db.add(broken)
    hamroh.clock.advance(minutes=5)  # type: ignore[attr-defined]
    async with transaction(hamroh.engine) as db:
        done = await scheduler.tick(db, hamroh.vault, hamroh.flows, now=hamroh.clock())
    assert (done.enqueued, done.recipients) == (1, 2)
    async with transaction(hamroh.engine) as db:
        statuses = [(await db.get(Announcement, i)).status for i in ids]  # type: ignore[union-attr]
    assert statuses == ["scheduled", "sending"]
    assert len(await bulk_rows(hamroh)) == 2


async def test_the_jobs_loop_of_serve_enqueues_a_scheduled_announcement(
    hamroh: Hamroh, tmp_path: Path, database_url: str
) -> None:
    await add_women(hamroh, [Woman(), Woman(lang="ru")])
    (author,) = await add_staff(hamroh, "malika")
    await announce(hamroh, at=hamroh.clock() + timedelta(minutes=1), author=author)
    hamroh.clock.advance(minutes=1)  # type: ignore[attr-defined]
    stop = asyncio.Event()
    loop = asyncio.create_task(run_case_jobs(settings_for_tests(tmp_path, database_url), hamroh, stop))
    try:
        for _ in range(250):
            if len(await bulk_rows(hamroh)) == 2:
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await loop
    assert len(await bulk_rows(hamroh)) == 2


async def test_a_scheduled_announcement_cancelled_before_its_time_leaves_nobody_counted(
    hamroh: Hamroh,
) -> None:
    await add_women(hamroh, [Woman(), Woman()])
    (author,) = await add_staff(hamroh, "malika")
    announcement_id, _ = await announce(hamroh, at=hamroh.clock() + timedelta(hours=1), author=author)
    async with transaction(hamroh.engine) as db:
        await drafts.cancel(db, announcement_id=announcement_id, staff=author, now=hamroh.clock())
    hamroh.clock.advance(hours=1)  # type: ignore[attr-defined]
    async with transaction(hamroh.engine) as db:
        done = await scheduler.tick(db, hamroh.vault, hamroh.flows, now=hamroh.clock())
        left = (await db.exec(select(AnnouncementRecipient))).all()
    assert (done.enqueued, left) == (0, [])
    assert await counts(hamroh, announcement_id) == {}
    assert await bulk_rows(hamroh) == []
