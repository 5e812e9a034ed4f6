"""Freeze the active sender with SIGSTOP: the standby takes over within the hold, and the frozen one,
continued, sends nothing more; only what it had in flight may repeat, and that is counted as in doubt.

Two real `hamroh dispatch` processes on one PostgreSQL database share one bot token, each talking to a
fake Bot API of its own, so every message is known by who sent it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from bot import outbox
from bot.store.crypto import Vault
from tests.conftest import TEST_ENCRYPTION_KEY, TEST_HASH_KEY, Clock
from tests.fakes.telegram_api import Call, FakeTelegram
from tests.test_crash import fill_outbox, rows_by_text, wait_until

HOLD = 2.0  # seconds a frozen sender keeps the lock (production: 10)
WOMEN = 50
REPLIES_EACH = 4
BULK = 20
RATE = 40  # messages a second, so sending lasts long enough to freeze in the middle of it

pytestmark = pytest.mark.postgres


def dispatcher(url: str, fake: FakeTelegram, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAMROH_")}
    env |= {
        "HAMROH_DATABASE_URL": url,
        "HAMROH_VAR_DIR": str(log.parent),
        "HAMROH_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "HAMROH_HASH_KEY": TEST_HASH_KEY,
        "HAMROH_TELEGRAM_TOKEN": fake.token,
        "HAMROH_TELEGRAM_SECRET": "lease-test-secret",
        "HAMROH_TELEGRAM_API_URL": fake.api_url,
        "HAMROH_TELEGRAM_MESSAGES_PER_SECOND": str(RATE),
        "HAMROH_TELEGRAM_CHAT_MESSAGES_PER_SECOND": "1000",
        "HAMROH_DISPATCH_SENDER_HOLD_SECONDS": str(HOLD),
    }
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        command = [sys.executable, "-m", "bot.cli", "dispatch"]
        return subprocess.Popen(command, env=env, stdout=out, stderr=out)


def sends(fake: FakeTelegram) -> list[Call]:
    return fake.calls_to("sendMessage")


def test_a_frozen_sender_is_replaced_within_the_hold_and_sends_nothing_more_when_it_wakes(
    postgres_url: str, vault: Vault, clock: Clock, tmp_path: Path
) -> None:
    asyncio.run(
        fill_outbox(
            postgres_url, vault, clock, women=WOMEN, replies_each=REPLIES_EACH, bulk=BULK, first_chat=7000
        )
    )
    with FakeTelegram() as one, FakeTelegram() as other:
        processes = {
            one: dispatcher(postgres_url, one, tmp_path / "one.log"),
            other: dispatcher(postgres_url, other, tmp_path / "other.log"),
        }
        try:
            logs = [tmp_path / "one.log", tmp_path / "other.log"]
            wait_until(lambda: all("dispatching for" in log.read_text() for log in logs))
            time.sleep(1)  # both have asked for the lock: one sends, the other waits
            wait_until(lambda: len(sends(one)) + len(sends(other)) >= 20)
            seen_by_active, seen_by_standby = (one, other) if sends(one) else (other, one)
            active = processes[seen_by_active]
            assert not sends(seen_by_standby)

            os.kill(active.pid, signal.SIGSTOP)
            frozen_at = time.monotonic()
            wait_until(lambda: len(sends(seen_by_standby)) > 0, seconds=30)
            takeover = sends(seen_by_standby)[0].at - frozen_at
            wait_until(lambda: len(sends(seen_by_standby)) > 20)  # the standby is well into the rest...

            sent_before_waking = len(sends(seen_by_active))
            os.kill(active.pid, signal.SIGCONT)  # ...when the frozen one wakes up
            woke_at = time.monotonic()

            def settled() -> bool:
                rows = asyncio.run(rows_by_text(postgres_url, vault))
                return all(r.status in (outbox.SENT, outbox.IN_DOUBT) for r in rows.values())

            wait_until(settled, seconds=120)
            time.sleep(HOLD)  # time for the woken one to misbehave, if it would
        finally:
            for process in processes.values():
                os.kill(process.pid, signal.SIGCONT)
                process.send_signal(signal.SIGTERM)
            for process in processes.values():
                process.wait(timeout=30)
        by_active, by_standby = sends(seen_by_active), sends(seen_by_standby)

    rows = asyncio.run(rows_by_text(postgres_url, vault))
    in_doubt = {text for text, row in rows.items() if row.in_doubt}
    after_waking = [c.text for c in by_active[sent_before_waking:]]
    received = Counter(c.text for c in by_active + by_standby if c.status == 200)
    duplicates = {text for text, n in received.items() if n > 1}
    print(
        f"takeover {takeover:.2f} s (hold {HOLD} s); sent by the frozen one after waking: "
        f"{len(after_waking)}; in doubt {len(in_doubt)}; sent twice {len(duplicates)}"
    )
    assert takeover < HOLD + 2.0  # the hold, the standby's next try, and a loaded test machine
    assert set(after_waking) <= in_doubt  # what it had on the wire when frozen, never anything new
    assert all(c.at < woke_at + 1 for c in by_active[sent_before_waking:])  # and nothing once awake
    replies = {text for text, row in rows.items() if row.kind == "reply"}
    assert replies <= set(received), "a reply was lost"
    assert duplicates <= in_doubt, "only messages in flight at the freeze may be sent twice"
    held = {text for text, row in rows.items() if row.status == outbox.IN_DOUBT}
    assert all(text.startswith("news") for text in held)  # bulk in doubt is not sent again
    arrived = sorted(by_active + by_standby, key=lambda c: c.at)
    for n in range(WOMEN):  # each woman's messages still arrive in the order written
        order = [c.text for c in arrived if (c.text or "").startswith(f"reply {n}-")]
        assert list(dict.fromkeys(order)) == [f"reply {n}-{m}" for m in range(REPLIES_EACH)]
