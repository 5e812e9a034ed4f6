"""Kill the dispatcher mid-send with SIGKILL, start it again: nothing is lost; only in-flight rows repeat.

A real `hamroh dispatch` process sends a few hundred queued messages through python-telegram-bot to the
fake Bot API, which holds one request open; the process is killed at that moment and started again.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from sqlmodel import col, select

from bot import outbox
from bot.store import OutboxMessage
from bot.store.crypto import Vault
from bot.store.db import create_engine, transaction
from tests.conftest import TEST_ENCRYPTION_KEY, TEST_HASH_KEY, Clock, telegram_contact
from tests.fakes.telegram_api import FakeTelegram

WOMEN = 40
REPLIES_EACH = 6
BULK = 60


async def fill_outbox(
    url: str,
    vault: Vault,
    clock: Clock,
    *,
    women: int = WOMEN,
    replies_each: int = REPLIES_EACH,
    bulk: int = BULK,
    first_chat: int = 5000,
) -> None:
    """Replies to `women` women ("reply n-m", in order for each) and `bulk` announcements ("news n")."""
    engine = create_engine(url)
    try:
        async with transaction(engine) as db:
            for n in range(women):
                address = f"tg:{first_chat + n}"
                contact = telegram_contact(vault, address, clock())
                db.add(contact)
                await db.flush()
                rows = [
                    outbox.row(
                        vault,
                        contact_id=contact.id,
                        channel="telegram",
                        sealed_address=contact.address,
                        body={"text": f"reply {n}-{m}"},
                        now=clock(),
                    )
                    for m in range(replies_each)
                ]
                await outbox.add(db, rows)
            news = [
                outbox.row(
                    vault,
                    contact_id=None,
                    channel="telegram",
                    sealed_address=vault.seal(f"tg:{9000 + n}"),
                    body={"text": f"news {n}"},
                    now=clock(),
                    kind="bulk",
                )
                for n in range(bulk)
            ]
            await outbox.add(db, news)
    finally:
        await engine.dispose()


async def rows_by_text(url: str, vault: Vault) -> dict[str, OutboxMessage]:
    engine = create_engine(url)
    try:
        async with transaction(engine) as db:
            rows = (await db.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all()
            return {json.loads(vault.open(r.body))["text"]: r for r in rows}
    finally:
        await engine.dispose()


def dispatcher(url: str, fake: FakeTelegram, tmp_path: Path, **more: str) -> subprocess.Popen[bytes]:
    """`hamroh dispatch` in a process of its own, sending to the fake Bot API (and whatever `more` says)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAMROH_")}
    env |= {
        "HAMROH_DATABASE_URL": url,
        "HAMROH_VAR_DIR": str(tmp_path),
        "HAMROH_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "HAMROH_HASH_KEY": TEST_HASH_KEY,
        "HAMROH_TELEGRAM_TOKEN": fake.token,
        "HAMROH_TELEGRAM_SECRET": "crash-test-secret",
        "HAMROH_TELEGRAM_API_URL": fake.api_url,
        "HAMROH_TELEGRAM_MESSAGES_PER_SECOND": "2000",
        "HAMROH_TELEGRAM_CHAT_MESSAGES_PER_SECOND": "2000",
        "HAMROH_DISPATCH_LEASE_SECONDS": "30",
        **more,
    }
    with (tmp_path / "dispatch.log").open("ab") as log:  # the child keeps its own copy of the descriptor
        command = [sys.executable, "-m", "bot.cli", "dispatch"]
        return subprocess.Popen(command, env=env, stdout=log, stderr=log)


def wait_until(condition: object, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_killed_mid_send_nothing_is_lost_and_only_in_flight_rows_repeat(
    database_url: str, vault: Vault, clock: Clock, tmp_path: Path
) -> None:
    asyncio.run(fill_outbox(database_url, vault, clock))
    total = WOMEN * REPLIES_EACH + BULK
    with FakeTelegram() as fake:
        first = dispatcher(database_url, fake, tmp_path)
        try:
            wait_until(lambda: len(fake.calls_to("sendMessage")) >= total // 3)
            fake.hang(times=1)  # the next request is held open...
            wait_until(lambda: any(c.status is None for c in fake.calls_to("sendMessage")))
            os.kill(first.pid, signal.SIGKILL)  # ...and the process dies at that moment
            first.wait(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
        in_flight = {
            text
            for text, row in asyncio.run(rows_by_text(database_url, vault)).items()
            if row.status == outbox.SENDING
        }
        assert in_flight, "something was in flight at the kill"
        fake.release()

        second = dispatcher(database_url, fake, tmp_path)
        try:

            def settled() -> bool:
                rows = asyncio.run(rows_by_text(database_url, vault))
                return all(r.status in (outbox.SENT, outbox.IN_DOUBT) for r in rows.values())

            wait_until(settled, seconds=120)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
        received = Counter(fake.sent_texts())

    rows = asyncio.run(rows_by_text(database_url, vault))
    replies = {t for t, r in rows.items() if r.kind == "reply"}
    assert replies <= set(received), "a reply was lost"
    duplicates = {t for t, n in received.items() if n > 1}
    assert duplicates <= in_flight, "only rows in flight at the kill may be sent twice"
    held = {t for t, r in rows.items() if r.status == outbox.IN_DOUBT}
    assert held <= in_flight
    assert all(t.startswith("news") for t in held)  # bulk in doubt is not resent
    assert {t for t, r in rows.items() if r.in_doubt} == in_flight  # every one of them counted
    for n in range(WOMEN):  # and each woman's messages left in the order written
        order = [t for t in fake.sent_texts() if t.startswith(f"reply {n}-")]
        assert [t for t in dict.fromkeys(order)] == [f"reply {n}-{m}" for m in range(REPLIES_EACH)]
