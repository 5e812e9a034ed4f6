"""Her message survives a database that stumbles: it lands, or its webhook is answered 503 within the turn's
time limit so Twilio or Telegram sends it again; nothing that was answered 200 is lost, nothing is half
written. Checked in the process, and with the real `hamroh serve` in front of PostgreSQL behind a proxy
the test pauses and cuts, and in front of an SQLite file another process holds locked.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from api.app import create_app
from api.deadline import TooSlow, within
from bot.conversation.flows import FlowSet
from bot.service import Hamroh
from bot.store.crypto import Vault
from bot.store.db import create_engine
from tests.conftest import (
    TEST_ENCRYPTION_KEY,
    TEST_HASH_KEY,
    Clock,
    Tokens,
    serving_process,
    settings_for_tests,
    until_serving,
)
from tests.fakes.telegram_api import Her
from tests.fakes.twilio_api import inbound_sms_form, new_sid, signed_request

LIMIT = 1.5  # HAMROH_TURN_TIMEOUT_SECONDS in these tests: short, so faults pass quickly
SLACK = 1.5  # what a loaded test machine may add to an answer given at the limit
PUBLIC_URL = "https://hamroh.example.org"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
HAMROH_NUMBER = "+15005550006"
TELEGRAM_SECRET = "webhook-secret_0123456789"


# --- the pieces: the time limit, the engine's bounds -----------------------------------------------------


async def test_the_answer_comes_at_the_limit_though_the_work_is_slow_to_unwind() -> None:
    unwound = asyncio.Event()

    async def stuck() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0.5)  # a rollback over a connection that hangs
            unwound.set()

    started = time.monotonic()
    with pytest.raises(TooSlow):
        await within(0.2, stuck())
    assert time.monotonic() - started < 0.4
    await asyncio.wait_for(unwound.wait(), 2)  # and the work still unwinds, behind the answer


async def test_work_within_the_limit_gives_its_result_or_its_own_error() -> None:
    async def answer() -> int:
        return 42

    async def fails() -> None:
        raise LookupError("hers")

    assert await within(1, answer()) == 42
    with pytest.raises(LookupError):
        await within(1, fails())


async def test_sqlite_syncs_every_commit_and_waits_for_a_lock_no_longer_than_a_turn(sqlite_url: str) -> None:
    for engine, busy_ms in (
        (create_engine(sqlite_url), 10_000),
        (create_engine(sqlite_url, command_timeout=2), 2000),
    ):
        try:
            async with engine.connect() as connection:
                assert (await connection.exec_driver_sql("PRAGMA synchronous")).scalar() == 2  # FULL
                assert (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
                assert (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar() == busy_ms
        finally:
            await engine.dispose()


@pytest.mark.postgres
async def test_postgres_ends_a_command_that_takes_longer_than_a_turn(postgres_url: str) -> None:
    engine = create_engine(postgres_url, command_timeout=1)
    try:
        async with engine.connect() as connection:
            assert (await connection.exec_driver_sql("SHOW statement_timeout")).scalar() == "1s"
            started = time.monotonic()
            with pytest.raises(Exception):  # noqa: B017, PT011 - the driver's or the server's, whichever first
                await connection.exec_driver_sql("SELECT pg_sleep(5)")
            assert time.monotonic() - started < 1 + SLACK
    finally:
        await engine.dispose()


# --- in the process: a locked SQLite file, Telegram and SMS -----------------------------------------------


@contextmanager
def write_locked(database_url: str) -> Iterator[None]:
    """Another connection holds SQLite's write lock until the block ends."""
    holder = sqlite3.connect(make_url(database_url).database or "", isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
        holder.execute("COMMIT")
    finally:
        holder.close()


@pytest.fixture
async def web(
    tmp_path: Path, sqlite_url: str, flows: FlowSet, vault: Vault, clock: Clock
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with Telegram and SMS on; its engine waits for a lock longer than a turn may take."""
    settings = settings_for_tests(
        tmp_path,
        sqlite_url,
        turn_timeout_seconds=LIMIT,
        public_url=PUBLIC_URL,
        telegram_token="123456:" + "A" * 35,
        telegram_secret=TELEGRAM_SECRET,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_from=HAMROH_NUMBER,
    )
    engine = create_engine(sqlite_url)
    hamroh = Hamroh(engine=engine, flows=flows, vault=vault, clock=clock, new_token=Tokens())
    transport = httpx.ASGITransport(app=create_app(settings, hamroh))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await engine.dispose()


def her_sms(text: str, *, sid: str | None = None, phone: str = "+992937711942") -> tuple[str, Any]:
    """Her SMS as Twilio posts it: its MessageSid and the signed request."""
    form = inbound_sms_form(phone, text, to=HAMROH_NUMBER, account_sid=ACCOUNT_SID, message_sid=sid)
    return form["MessageSid"], signed_request(AUTH_TOKEN, f"{PUBLIC_URL}/webhooks/sms", form)


async def rows(database_url: str, table: str) -> int:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return int((await connection.exec_driver_sql(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        await engine.dispose()


async def test_a_locked_database_is_a_503_within_the_limit_then_the_same_messages_land(
    web: httpx.AsyncClient, sqlite_url: str
) -> None:
    update = Her(chat_id=100001).says("Салом")
    telegram = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET, "content-type": "application/json"}
    _, sms = her_sms("Салом")

    with write_locked(sqlite_url):
        for post in (
            lambda: web.post("/webhooks/telegram", json=update, headers=telegram),
            lambda: web.post(sms.path, content=sms.body, headers=sms.headers),
        ):
            started = time.monotonic()
            response = await post()
            assert response.status_code == 503
            assert f"within {LIMIT:g} s" in response.text  # the reason, and nothing of hers
            assert time.monotonic() - started < LIMIT + SLACK

    assert (await rows(sqlite_url, "deliveries"), await rows(sqlite_url, "contacts")) == (0, 0)  # rolled back
    assert (await web.post("/webhooks/telegram", json=update, headers=telegram)).status_code == 200
    assert (await web.post(sms.path, content=sms.body, headers=sms.headers)).status_code == 200
    assert (await rows(sqlite_url, "deliveries"), await rows(sqlite_url, "contacts")) == (2, 2)


# --- the real `hamroh serve` -------------------------------------------------------------------------------


class Proxy:
    """127.0.0.1:port forwarding to a database: pause() stops every byte both ways (a database that hangs,
    not one that refuses), resume() lets them go on, cut() closes every connection at once."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.loop = asyncio.new_event_loop()
        self.flowing = asyncio.Event()
        self.writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.server: asyncio.Server | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, name="db-proxy", daemon=True)

    def __enter__(self) -> Proxy:
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(self._listen(), self.loop).result(5)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        self.resume()
        self.cut()
        if self.server is not None:
            self.server.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def pause(self) -> None:
        self.loop.call_soon_threadsafe(self.flowing.clear)

    def resume(self) -> None:
        self.loop.call_soon_threadsafe(self.flowing.set)

    def cut(self) -> None:
        def close_all() -> None:
            for writer in list(self.writers):
                writer.transport.abort()
            self.writers.clear()

        self.loop.call_soon_threadsafe(close_all)

    async def _listen(self) -> asyncio.Server:
        self.flowing.set()
        return await asyncio.start_server(self._link, "127.0.0.1", 0)

    async def _link(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        try:
            server_in, server_out = await asyncio.open_connection(*self.target)
        except OSError:
            client_out.transport.abort()
            return
        self.writers |= {client_out, server_out}
        await asyncio.gather(self._pump(client_in, server_out), self._pump(server_in, client_out))

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                await self.flowing.wait()
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            sink.transport.abort()
            self.writers.discard(sink)


@contextmanager
def serving(tmp_path: Path, database_url: str) -> Iterator[str]:
    """`hamroh serve` on a free port with SMS on and a short turn limit; its base URL once it listens."""
    environment = {
        "HAMROH_DATABASE_URL": database_url,
        "HAMROH_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "HAMROH_HASH_KEY": TEST_HASH_KEY,
        "HAMROH_TURN_TIMEOUT_SECONDS": str(LIMIT),
        "HAMROH_PUBLIC_URL": PUBLIC_URL,
        "HAMROH_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "HAMROH_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "HAMROH_TWILIO_FROM": HAMROH_NUMBER,
        "HAMROH_TWILIO_API_URL": "http://127.0.0.1:9",  # nothing is sent here: no dispatcher runs
        "HAMROH_DISPATCH_IN_PROCESS": "false",
    }
    with serving_process(tmp_path, **environment) as (_, lines):
        yield until_serving(lines, [])


class Twilio:
    """Twilio's side: posts her SMS to serve, and keeps what each MessageSid was answered."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=30)
        self.answered: dict[str, list[int]] = {}
        self.slowest = 0.0

    def sends(self, text: str, *, sid: str | None = None) -> int:
        sid = sid or new_sid()
        _, request = her_sms(text, sid=sid, phone=f"+99293{int(sid[-7:], 16) % 10**7:07d}")  # one each
        started = time.monotonic()
        status = self.client.post(request.path, content=request.body, headers=request.headers).status_code
        self.slowest = max(self.slowest, time.monotonic() - started)
        self.answered.setdefault(sid, []).append(status)
        return status

    def retries_what_failed(self) -> None:
        """Twilio sends again whatever was not answered 200 (each MessageSid to the same number)."""
        for sid, statuses in list(self.answered.items()):
            if 200 not in statuses:
                assert self.sends("Салом", sid=sid) == 200

    def in_parallel(self, count: int) -> list[int]:
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(self.sends("Салом"))) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        return results

    def close(self) -> None:
        self.client.close()

    def health(self) -> tuple[int, float]:
        started = time.monotonic()
        status = self.client.get("/healthz").status_code
        return status, time.monotonic() - started


async def landed(database_url: str) -> set[str]:
    """The MessageSids recorded, each with its contact and her reply waiting in the outbox."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            recorded = await connection.execute(
                sa.text(
                    "SELECT d.provider_id FROM deliveries d WHERE d.channel = 'sms' AND EXISTS"
                    " (SELECT 1 FROM outbox o WHERE o.contact_id = d.contact_id)"
                )
            )
            sids = {row[0] for row in recorded}
            contacts = (await connection.exec_driver_sql("SELECT count(*) FROM contacts")).scalar_one()
            assert contacts == len(sids)  # no contact left by a turn that did not finish
            return sids
    finally:
        await engine.dispose()


@pytest.mark.postgres
def test_serve_on_a_postgres_that_hangs_then_drops_loses_nothing_it_answered(
    tmp_path: Path, postgres_url: str
) -> None:
    url = make_url(postgres_url)
    with Proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        with serving(tmp_path, through) as base, closing(Twilio(base)) as twilio:
            assert twilio.sends("Салом") == 200

            proxy.pause()  # the database hangs: no error, no answer
            statuses = twilio.in_parallel(4)
            health, took = twilio.health()
            assert set(statuses) <= {200, 503}
            assert 503 in statuses
            assert twilio.slowest < LIMIT + SLACK
            assert health == 503
            assert took < 2 + SLACK

            proxy.resume()
            assert twilio.sends("Салом") == 200
            assert twilio.health()[0] == 200

            proxy.cut()  # every connection dropped at once
            assert set(twilio.in_parallel(3)) <= {200, 503}
            assert twilio.sends("Салом") == 200
            twilio.retries_what_failed()
            assert twilio.slowest < LIMIT + SLACK

    answered = {sid for sid, statuses in twilio.answered.items() if 200 in statuses}
    assert asyncio.run(landed(postgres_url)) == answered == set(twilio.answered)


def test_serve_on_a_sqlite_file_another_process_holds_answers_503_in_time_then_lands(
    tmp_path: Path, sqlite_url: str
) -> None:
    with serving(tmp_path, sqlite_url) as base, closing(Twilio(base)) as twilio:
        assert twilio.sends("Салом") == 200
        with subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None);"
                " c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); sys.stdin.readline();"
                " c.execute('COMMIT')",
                make_url(sqlite_url).database or "",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        ) as holder:
            assert holder.stdin is not None
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "locked"
            started = time.monotonic()
            assert twilio.sends("Салом") == 503
            assert time.monotonic() - started < LIMIT + SLACK
            health, took = twilio.health()  # its transaction begins IMMEDIATE too: it waits for the writer
            assert health == 503
            assert took < 2 + SLACK

            holder.stdin.write("\n")
            holder.stdin.flush()
            assert holder.wait(10) == 0
        twilio.retries_what_failed()
        assert twilio.sends("Салом") == 200

    assert asyncio.run(landed(sqlite_url)) == set(twilio.answered)
