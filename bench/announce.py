"""An announcement to 100,000 subscribers on PostgreSQL: how long enqueueing takes, and how it leaves.

    .venv/bin/python bench/announce.py [--count 100000] [--sms-share 0.1] [--rate-scale 20]
                                       [--send-seconds 20] [--scheduled] [--postgres URL]

The database is one of its own on the server named by --postgres, HAMROH_BENCH_POSTGRES_URL or
HAMROH_TEST_POSTGRES_URL, created and dropped. It is filled with `--count` women who asked for news (most on
Telegram, `--sms-share` of them by SMS in the three letters choices, a tenth with safe hours that are
closed now), then analysed as autovacuum would.

Figures:
- counting the audience (the preview a coordinator sees) and enqueueing it (sealing the texts, outbox rows,
  recipients linked to them: a few set-based statements), against the goal of 5 s; with --scheduled, it is
  scheduled 10 s ahead (its women counted then) and the schedule job's run at that time is timed;
- the send: the real dispatcher and senders (python-telegram-bot, the twilio SDK) against the fake Bot API
  (in a process of its own, enforcing Telegram's limits) and the fake Twilio (one segment a second), both
  clocks `--rate-scale` times faster, for `--send-seconds`: the achieved rate against the allowed one,
  429s, and texts received twice;
- then the announcement is cancelled: how long that takes, and what still left after it (only what was
  in flight may);
- the page's counts at the end (each recipient in one bucket).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import KEYS, postgres_database
from bench.dispatch import FakeProcess, Here
from bot.announcements import drafts, scheduler
from bot.announcements.audience import Audience
from bot.config import Settings
from bot.conversation import hours
from bot.runtime import load_content
from bot.service import Hamroh
from bot.store import Contact, Staff, Subscription
from bot.store.crypto import Vault, make_vault
from bot.store.db import create_engine, transaction
from tests.conftest import TEST_ENCRYPTION_KEY, TEST_HASH_KEY
from tests.fakes.twilio_api import FakeTwilio

TELEGRAM_PER_SECOND = 30.0  # Telegram's limits, before scaling
TELEGRAM_PER_CHAT_PER_SECOND = 1.0
TWILIO_SEGMENTS_PER_SECOND = 1.0  # a long-code number
GOAL_SECONDS = 5.0
FIRST_CHAT = 300_000_000
SECRET = "bench-announce-secret"
TEXT = {
    "tg": "Семинари ҳуқуқӣ дар Кӯлоб, 5 декабр, соати 10. Бепул.",
    "ru": "Правовой семинар в Кулябе, 5 декабря, в 10 часов. Бесплатно.",
}
BATCH = 10_000


def closed_hours(now: datetime) -> str:
    """Safe hours that are closed now (three hours from now, for two hours), so her message is held."""
    hour = now.astimezone(hours.DUSHANBE).hour
    return f"{(hour + 3) % 24}-{(hour + 5) % 24}"


async def fill(url: str, vault: Vault, count: int, sms_share: float, now: datetime) -> None:
    """`count` women who asked for news, written in batches (the sealing is the slow part)."""
    engine = create_engine(url)
    contacts = Contact.__table__  # type: ignore[attr-defined]
    subscriptions = Subscription.__table__  # type: ignore[attr-defined]
    safe = closed_hours(now)
    every_sms = max(1, round(1 / sms_share)) if sms_share > 0 else 0
    try:
        for start in range(0, count, BATCH):
            rows = []
            for n in range(start, min(count, start + BATCH)):
                sms = every_sms and n % every_sms == 0
                address = f"+99290{n:07d}" if sms else f"tg:{FIRST_CHAT + n}"
                rows.append(
                    {
                        "channel": "sms" if sms else "telegram",
                        "fingerprint": vault.fingerprint(address),
                        "address": vault.seal(address),
                        "lang": "ru" if n % 5 < 2 else "tg",
                        "district": None,
                        "script": ("cyrillic", "plain", "latin")[n % 3],
                        "subscribed": True,
                        "opted_out": False,
                        "reachable": True,
                        "safe_hours": safe if n % 10 == 7 else None,
                        "may_have_case": False,
                        "pseudonym": f"b{n:08d}",
                        "pseudonym_month": now.strftime("%Y-%m"),
                        "created_at": now,
                    }
                )
            async with engine.begin() as connection:
                await connection.execute(sa.insert(contacts), rows)
        async with engine.begin() as connection:
            await connection.execute(
                sa.insert(subscriptions).from_select(
                    ["contact_id", "topic", "created_at"],
                    sa.select(
                        contacts.c.id, sa.literal("events"), sa.literal(now, contacts.c.created_at.type)
                    ),
                )
            )
            await connection.execute(sa.text("ANALYZE"))
    finally:
        await engine.dispose()


async def run(args: argparse.Namespace, folder: Path, url: str) -> None:
    vault = make_vault(TEST_ENCRYPTION_KEY, TEST_HASH_KEY)
    now = datetime.now(UTC)
    started = time.perf_counter()
    await fill(url, vault, args.count, args.sms_share, now)
    print(f"  filled {args.count} women who asked for news in {time.perf_counter() - started:.1f} s")

    fake = FakeProcess(args.rate_scale, folder)
    twilio = FakeTwilio().start()
    # Bursts of one second's worth, as the dispatcher's own bucket allows (Twilio queues a burst anyway).
    sms_rate = TWILIO_SEGMENTS_PER_SECOND * args.rate_scale
    twilio.limit_rate(TWILIO_SEGMENTS_PER_SECOND, rate_scale=args.rate_scale, burst=max(1.0, sms_rate))
    settings = Settings(
        env="development",
        database_url=url,
        var_dir=folder,
        **KEYS,
        telegram_token=fake.token,
        telegram_secret=SECRET,
        telegram_api_url=fake.api_url,
        telegram_messages_per_second=TELEGRAM_PER_SECOND * args.rate_scale,
        telegram_chat_messages_per_second=TELEGRAM_PER_CHAT_PER_SECOND * args.rate_scale,
        twilio_account_sid=twilio.account_sid,
        twilio_auth_token=twilio.auth_token,
        twilio_from="+15005550006",
        twilio_api_url=twilio.api_url,
        twilio_segments_per_second=TWILIO_SEGMENTS_PER_SECOND * args.rate_scale,
        sms_price_per_segment="0.35 TJS",
        announce_quiet_hours="",
        dispatch_in_process=False,
    )
    flows = load_content(settings)
    here = Here(settings, flows)
    hamroh: Hamroh = here.hamroh
    try:
        async with transaction(hamroh.engine) as db:
            staff = Staff(name="bench", role="coordinator", password_hash="-", created_at=now)
            db.add(staff)
        started = time.perf_counter()
        async with transaction(hamroh.engine) as db:
            announcement, preview = await drafts.create(
                db, hamroh.vault, flows, settings, staff=staff, text=TEXT, audience=Audience(), now=now
            )
        counted = time.perf_counter() - started
        assert announcement.id is not None
        print(
            f"  preview: {preview.audience} women, segments {preview.segments}, "
            f"estimated cost {preview.estimated_cost} ({counted:.2f} s)"
        )
        if args.scheduled:
            started = time.perf_counter()
            at = datetime.now(UTC) + timedelta(seconds=10)
            async with transaction(hamroh.engine) as db:
                await drafts.send(
                    db,
                    hamroh.vault,
                    flows,
                    settings,
                    announcement_id=announcement.id,
                    staff=staff,
                    at=at,
                    override_reason=None,
                    now=datetime.now(UTC),
                )
            print(f"  scheduled 10 s ahead, its women counted in: {time.perf_counter() - started:.2f} s")
            await asyncio.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()))
            started = time.perf_counter()
            async with transaction(hamroh.engine) as db:  # the schedule job, its time come
                await scheduler.tick(db, hamroh.vault, flows, now=datetime.now(UTC))
            what = "enqueue by the schedule job (texts, blocked, outbox rows, recipients linked)"
        else:
            started = time.perf_counter()
            async with transaction(hamroh.engine) as db:
                await drafts.send(
                    db,
                    hamroh.vault,
                    flows,
                    settings,
                    announcement_id=announcement.id,
                    staff=staff,
                    at=None,
                    override_reason=None,
                    now=datetime.now(UTC),
                )
            what = "enqueue, sent now (texts, outbox rows, recipients)"
        enqueued = time.perf_counter() - started
        verdict = "within" if enqueued < GOAL_SECONDS else "OVER"
        print(f"  {what}: {enqueued:.2f} s, {verdict} the goal of {GOAL_SECONDS:.0f} s")
        async with transaction(hamroh.engine) as db:
            queued = await drafts.counts(db, announcement_id=announcement.id)
        print(f"  counts after enqueueing: {_shown(queued)}")

        began, cpu = time.monotonic(), time.process_time()
        here.start()
        await asyncio.sleep(args.send_seconds)
        stopping = time.monotonic()
        cpu = (time.process_time() - cpu) / (stopping - began)
        started = time.perf_counter()
        async with transaction(hamroh.engine) as db:
            await drafts.cancel(db, announcement_id=announcement.id, staff=staff, now=datetime.now(UTC))
        cancelled = time.perf_counter() - started
        await asyncio.sleep(2.0)  # what was in flight at the cancel finishes
        await here.close()
        calls, throttled = await fake.dump()
        claims = here.claims
        async with transaction(hamroh.engine) as db:
            counts = await drafts.counts(db, announcement_id=announcement.id)
    finally:
        fake.stop()
        twilio.stop()
    accepted = [c for c in calls if c.status == 200]
    sms = [c for c in twilio.calls if c.method == "POST" and c.status == 201]
    report(
        "Telegram", [c.at for c in accepted if c.at >= began], TELEGRAM_PER_SECOND * args.rate_scale, "msg/s"
    )
    report(
        "SMS",
        [c.started for c in sms if c.started >= began],
        TWILIO_SEGMENTS_PER_SECOND * args.rate_scale,
        "segments/s",
    )
    received = Counter([str(c.chat_id) for c in accepted] + [c.form.get("To", "") for c in sms])
    duplicates = sum(n - 1 for n in received.values() if n > 1)
    if claims:
        ordered = sorted(claims)
        p50, worst = ordered[len(ordered) // 2] * 1000, ordered[-1] * 1000
        print(f"  claims: {len(claims)}, p50 {p50:.1f} ms, max {worst:.1f} ms")
    print(f"  this process (the dispatcher, and the fake Twilio's thread) used {cpu:.0%} of a core")
    print(f"  429s answered: Telegram {throttled}, Twilio {twilio.rate_limited}   duplicates: {duplicates}")
    after = sum(1 for c in accepted if c.at > stopping + cancelled) + sum(
        1 for c in sms if c.started > stopping + cancelled
    )
    print(
        f"  cancel after {args.send_seconds:g} s: {cancelled:.2f} s; "
        f"messages that left after it: {after} (only those in flight may)"
    )
    print(f"  counts at the end: {_shown(counts)} (sum {sum(counts.values())})")


def report(channel: str, times: list[float], allowed: float, unit: str) -> None:
    if len(times) < 2:
        print(f"  {channel}: {len(times)} sent")
        return
    times.sort()
    rate = (len(times) - 1) / (times[-1] - times[0])
    print(
        f"  {channel}: {len(times)} sent, achieved {rate:.1f} {unit}, allowed {allowed:g} {unit}, "
        f"ratio {rate / allowed:.2f}"
    )


def _shown(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "none"


async def main(args: argparse.Namespace) -> None:
    print(
        f"An announcement to {args.count} subscribers ({args.sms_share:.0%} by SMS) on PostgreSQL; "
        f"limits x{args.rate_scale:g}: Telegram {TELEGRAM_PER_SECOND * args.rate_scale:g} msg/s, "
        f"Twilio {TWILIO_SEGMENTS_PER_SECOND * args.rate_scale:g} segments/s."
    )
    with tempfile.TemporaryDirectory() as name:
        async with postgres_database(args.postgres) as url:
            await run(args, Path(name), url)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=100_000, help="subscribers (default 100000)")
    parser.add_argument("--sms-share", type=float, default=0.1, help="share of them on SMS (default 0.1)")
    parser.add_argument("--rate-scale", type=float, default=20.0, help="how much faster the clock runs")
    parser.add_argument(
        "--scheduled", action="store_true", help="schedule it 10 s ahead; the schedule job enqueues it"
    )
    parser.add_argument("--send-seconds", type=float, default=20.0, help="how long to send before cancelling")
    default = os.environ.get("HAMROH_BENCH_POSTGRES_URL") or os.environ.get("HAMROH_TEST_POSTGRES_URL")
    parser.add_argument("--postgres", default=default, help="a PostgreSQL server URL")
    args = parser.parse_args()
    if not args.postgres:
        parser.error("name a PostgreSQL server: --postgres URL or HAMROH_BENCH_POSTGRES_URL")
    if args.count < 1 or not 0 <= args.sms_share <= 1 or args.rate_scale <= 0 or args.send_seconds <= 0:
        parser.error("need at least one subscriber, a share between 0 and 1, positive scale and seconds")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse()))
