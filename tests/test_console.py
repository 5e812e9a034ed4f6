"""The live console: the feed listener across processes (PostgreSQL LISTEN/NOTIFY, SQLite polling), the
event stream, and the pages (her words as text, CSRF, roles, every step on a case, her Telegram files)."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from api.app import create_app
from api.console import events as console_events
from api.console.sound import PATH as CHIME_PATH
from api.console.sound import chime
from bot.cases import feed, intake
from bot.cases.canned import Canned, CannedError, load
from bot.cases.listen import RELOAD, FeedEvent, Listener
from bot.config import ROOT, Settings
from bot.conversation.hours import DUSHANBE
from bot.service import Hamroh, Inbound
from bot.staff.passwords import hash_password
from bot.store import AuditEntry, Case, Contact, OutboxMessage, Staff, erase
from bot.store.db import create_engine, transaction
from tests.conftest import Clock, settings_for_tests
from tests.fakes.telegram_api import FakeTelegram

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def listener(engine: AsyncEngine) -> AsyncIterator[Listener]:
    listener = Listener(engine, poll_seconds=0.05, ping_seconds=60)
    listener.start()
    yield listener
    await listener.stop()


async def publish(engine: AsyncEngine, kind: str = "case_opened", case_id: int = 1) -> int:
    """A feed event about a case, committed (the case row itself is not needed by the feed)."""
    async with transaction(engine) as db:
        case = Case(id=case_id, channel="sms", queue="support", category="danger", priority="urgent")
        event = await feed.publish(db, kind, case, NOW)
    assert event.id is not None
    return event.id


async def gather(subscription: object, count: int, within: float = 5.0) -> list[FeedEvent]:
    """At least `count` events from a subscription, waiting at most `within` seconds."""
    events: list[FeedEvent] = []
    deadline = time.monotonic() + within
    while len(events) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"got {len(events)} events, not {count}")
        events += await subscription.next(within=left)  # type: ignore[attr-defined]
    return events


async def test_a_subscriber_hears_of_a_new_event_from_another_connection(
    engine: AsyncEngine, listener: Listener
) -> None:
    async with listener.subscribe() as subscription:
        assert await subscription.next(within=0.2) == []
        event_id = await publish(engine, case_id=7)
        [event] = await gather(subscription, 1)
    assert (event.id, event.kind, event.case_id, event.priority, event.queue) == (
        event_id,
        "case_opened",
        7,
        "urgent",
        "support",
    )


@pytest.mark.postgres
async def test_postgres_notify_wakes_the_listener_at_once(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    # Pings once a minute and never polls: only the notification can wake it.
    listener = Listener(engine, ping_seconds=60)
    try:
        async with listener.subscribe() as subscription:
            await asyncio.wait_for(listener.connected.wait(), 5)
            started = time.monotonic()
            await publish(engine)
            [event] = await gather(subscription, 1, within=2)
            assert time.monotonic() - started < 0.5
            assert event.kind == "case_opened"
    finally:
        await listener.stop()
        await engine.dispose()


@pytest.mark.postgres
async def test_postgres_listener_reconnects_and_reads_what_it_missed(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    listener = Listener(engine, ping_seconds=60, retry_seconds=0.05)
    try:
        async with listener.subscribe() as subscription:
            await asyncio.wait_for(listener.connected.wait(), 5)
            admin = await asyncpg.connect(postgres_url)
            try:
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
                )
            finally:
                await admin.close()
            missed = await publish(engine, case_id=1)  # perhaps before it listens again
            events = await gather(subscription, 1, within=5)
            await asyncio.wait_for(listener.connected.wait(), 5)
            later = await publish(engine, case_id=2)
            events += await gather(subscription, 1, within=5)
        assert [e.id for e in events] == [missed, later]
    finally:
        await listener.stop()
        await engine.dispose()


@pytest.mark.postgres
async def test_postgres_an_event_committed_after_a_newer_one_still_arrives(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    listener = Listener(engine, ping_seconds=60)
    try:
        async with listener.subscribe() as subscription:
            await asyncio.wait_for(listener.connected.wait(), 5)
            slow_took_id = asyncio.Event()
            slow_may_commit = asyncio.Event()

            async def slow() -> int:
                async with transaction(engine) as db:
                    case = Case(id=1, channel="sms", queue="support", category="danger", priority="urgent")
                    event = await feed.publish(db, "case_opened", case, NOW)
                    slow_took_id.set()
                    await slow_may_commit.wait()
                assert event.id is not None
                return event.id

            first = asyncio.create_task(slow())
            await slow_took_id.wait()
            second = await publish(engine, case_id=2)  # a higher id, committed first
            got = await gather(subscription, 1)
            slow_may_commit.set()
            lower = await first
            got += await gather(subscription, 1)
        assert lower < second
        assert [e.id for e in got] == [second, lower]
    finally:
        await listener.stop()
        await engine.dispose()


async def test_sqlite_polling_finds_new_rows(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    listener = Listener(engine, poll_seconds=0.05)
    try:
        async with listener.subscribe() as subscription:
            first = await publish(engine, case_id=1)
            second = await publish(engine, case_id=2)
            events = await gather(subscription, 2, within=2)
        assert [e.id for e in events] == [first, second]
    finally:
        await listener.stop()
        await engine.dispose()


async def test_sqlite_reads_nothing_while_nobody_listens(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    listener = Listener(engine, poll_seconds=0.01)
    reads = 0
    original = listener._read

    async def counted(**kwargs: object) -> list[FeedEvent]:
        nonlocal reads
        reads += 1
        return await original(**kwargs)  # type: ignore[arg-type]

    listener._read = counted  # type: ignore[method-assign]
    try:
        listener.start()
        await asyncio.sleep(0.2)
        assert reads == 0
        async with listener.subscribe() as subscription:
            await publish(engine)
            await gather(subscription, 1)
        assert reads > 0
        await asyncio.sleep(0.05)  # the loop notices nobody listens
        idle = reads
        await asyncio.sleep(0.2)
        assert reads == idle
        assert listener.cursor is None
    finally:
        await listener.stop()
        await engine.dispose()


async def test_a_reconnect_with_last_event_id_gets_exactly_the_missed_events(
    engine: AsyncEngine, listener: Listener
) -> None:
    async with listener.subscribe() as subscription:
        seen = [await publish(engine, case_id=n) for n in (1, 2, 3)]
        assert [e.id for e in await gather(subscription, 3)] == seen
    # The browser is gone; the feed goes on.
    missed = [await publish(engine, "case_message", case_id=n) for n in (4, 5)]
    async with listener.subscribe(after=seen[-1]) as subscription:
        events = await gather(subscription, 2)
        live = await publish(engine, "case_claimed", case_id=6)
        events += await gather(subscription, 1)
        assert await subscription.next(within=0.2) == []
    assert [e.id for e in events] == [*missed, live]
    assert [e.kind for e in events] == ["case_message", "case_message", "case_claimed"]


async def test_a_new_subscriber_without_last_event_id_starts_from_now(
    engine: AsyncEngine, listener: Listener
) -> None:
    await publish(engine, case_id=1)
    async with listener.subscribe() as subscription:
        assert await subscription.next(within=0.2) == []
        fresh = await publish(engine, case_id=2)
        assert [e.id for e in await gather(subscription, 1)] == [fresh]


async def test_many_subscribers_each_get_every_event(engine: AsyncEngine, listener: Listener) -> None:
    async with listener.subscribe() as one, listener.subscribe() as two, listener.subscribe() as three:
        assert listener.subscribers == 3
        ids = [await publish(engine, case_id=n) for n in range(4)]
        for subscription in (one, two, three):
            assert [e.id for e in await gather(subscription, 4)] == ids
    assert listener.subscribers == 0


async def test_a_slow_subscriber_gets_one_reload_instead_of_a_growing_buffer(engine: AsyncEngine) -> None:
    listener = Listener(engine, poll_seconds=0.02, queue_size=3)
    try:
        async with listener.subscribe() as slow, listener.subscribe() as quick:
            ids = []
            for n in range(6):
                ids.append(await publish(engine, case_id=n))
                assert [e.id for e in await gather(quick, 1)] == [ids[-1]]
            assert len(slow._buffer) <= 3
            [reload] = await slow.next(within=1)
            assert reload.kind == RELOAD
            assert reload.id == ids[-1]  # where it resumes from
            after = await publish(engine, case_id=9)
            assert [e.id for e in await gather(slow, 1)] == [after]
    finally:
        await listener.stop()


async def test_a_resume_from_too_far_back_is_a_reload(engine: AsyncEngine) -> None:
    ids = [await publish(engine, case_id=n) for n in range(5)]
    listener = Listener(engine, poll_seconds=0.02, queue_size=3)
    try:
        async with listener.subscribe(after=0) as subscription:
            [reload] = await subscription.next(within=1)
        assert (reload.kind, reload.id) == (RELOAD, ids[-1])
        async with listener.subscribe(after=ids[1]) as subscription:
            assert [e.id for e in await gather(subscription, 3)] == ids[2:]
    finally:
        await listener.stop()


# --- the event stream --------------------------------------------------------------------------------------


async def test_the_stream_has_ids_and_resumes_after_last_event_id(
    engine: AsyncEngine, listener: Listener
) -> None:
    first = await publish(engine, case_id=1)
    second = await publish(engine, "case_claimed", case_id=2)
    chunks = []
    async for chunk in console_events.stream(listener, first, keep_alive=0.05, lasts=0.5):
        chunks.append(chunk)
    text = "".join(chunks)
    assert text.startswith("retry: 1000\n\n")
    assert f"id: {first}\n" not in text  # the browser had it already
    assert (
        f'id: {second}\nevent: case\ndata: {{"kind": "case_claimed", "case": 2, "priority": "urgent", '
        '"queue": "support"}\n\n'
    ) in text
    assert ": keep-alive\n\n" in text  # nothing else came: comments keep the connection open


async def test_streams_end_at_once_when_the_process_is_told_to_stop(listener: Listener) -> None:
    chunks: list[str] = []
    streaming = asyncio.Event()

    async def read() -> None:
        async for chunk in console_events.stream(listener, None, keep_alive=60, lasts=60):
            chunks.append(chunk)
            streaming.set()

    reading = asyncio.create_task(read())
    await asyncio.wait_for(streaming.wait(), 5)
    previous = signal.getsignal(signal.SIGTERM)
    heard: list[int] = []
    signal.signal(signal.SIGTERM, lambda number, frame: heard.append(number))  # the server's own handler
    try:
        console_events.end_streams_at_exit(listener)
        signal.raise_signal(signal.SIGTERM)
        await asyncio.wait_for(reading, 1)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert heard == [signal.SIGTERM]  # the server still hears it, after the streams were told to end
    assert chunks == ["retry: 1000\n\n"]


def test_a_reload_message_has_the_id_to_resume_from() -> None:
    assert console_events.message(FeedEvent(41, RELOAD)) == "id: 41\nevent: reload\ndata: {}\n\n"


# --- the pages ---------------------------------------------------------------------------------------------

PASSWORD = "a long and quiet password"
STAFF = {
    "nodira": "counsellor",
    "malika": "counsellor",
    "farida": "supervisor",
    "admin": "admin",
    "coord": "coordinator",
}
STEPS = ("claim", "release", "reply", "note", "transfer", "send-now", "safe-hours", "close", "unmask", "cost")
DANGER = "мард маро мекушад"
MARKUP = '<script>window.ran = 1</script><img src=x onerror="window.ran = 2"> & <b>бе</b>'


@dataclass
class Desk:
    """The app with staff accounts; `browser(name)` is a logged-in client."""

    app: FastAPI
    hamroh: Hamroh
    settings: Settings
    clients: list[httpx.AsyncClient] = field(default_factory=list)
    phones: int = 0

    def client(self) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://testserver")
        self.clients.append(client)
        return client

    async def browser(self, name: str) -> Staffer:
        client = self.client()
        answer = await client.post("/login", data={"name": name, "password": PASSWORD})
        assert answer.status_code == 303, answer.text
        page = await client.get("/console") if STAFF[name] != "coordinator" else None
        csrf = _csrf(page.text) if page is not None else ""
        return Staffer(client, csrf)

    async def woman_writes(self, text: str, *, phone: str | None = None, channel: str = "sms") -> str:
        """Her message through the service, as a webhook would hand it over; returns her address."""
        if phone is None:
            self.phones += 1
            phone = f"+99293555{self.phones:04d}" if channel == "sms" else f"tg:{4200 + self.phones}"
        await self.hamroh.handle(Inbound(channel, phone, text=text))  # type: ignore[arg-type]
        return phone

    async def newest_case(self) -> Case:
        async with transaction(self.hamroh.engine) as db:
            return (await db.exec(select(Case).order_by(col(Case.id).desc()))).first()  # type: ignore[return-value]

    async def case(self, case_id: int) -> Case:
        async with transaction(self.hamroh.engine) as db:
            found = await db.get(Case, case_id)
        assert found is not None
        return found


@dataclass
class Staffer:
    client: httpx.AsyncClient
    csrf: str

    async def post(self, path: str, **form: str) -> httpx.Response:
        return await self.client.post(path, data={"csrf": self.csrf, **form})


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


_HASHES: list[str] = []


async def _hashed() -> str:
    if not _HASHES:
        _HASHES.append(await hash_password(PASSWORD))
    return _HASHES[0]


def desk_settings(tmp_path: Path, database_url: str, **more: object) -> Settings:
    return settings_for_tests(tmp_path, database_url, **more)


@pytest.fixture
async def desk(tmp_path: Path, database_url: str, hamroh: Hamroh) -> AsyncIterator[Desk]:
    settings = desk_settings(tmp_path, database_url, sms_price_per_segment="0.35 TJS")
    async with _desk(settings, hamroh) as made:
        yield made


@asynccontextmanager
async def _desk(settings: Settings, hamroh: Hamroh) -> AsyncIterator[Desk]:
    app = create_app(settings, hamroh)
    async with app.router.lifespan_context(app):
        async with transaction(hamroh.engine) as db:
            for name, role in STAFF.items():  # one slow hash for all: accounts are not what is tested here
                db.add(Staff(name=name, role=role, password_hash=await _hashed(), created_at=hamroh.clock()))
        made = Desk(app, hamroh, settings)
        try:
            yield made
        finally:
            for client in made.clients:
                await client.aclose()


async def test_the_queue_shows_urgent_first_then_the_longest_waiting(desk: Desk, clock: Clock) -> None:
    async with transaction(desk.hamroh.engine) as db:
        for minutes in (50, 20):  # two women who asked for a lawyer, 50 and 20 minutes ago
            since = clock.now - timedelta(minutes=minutes)
            db.add(
                Case(
                    channel="telegram",
                    lang="ru",
                    queue="legal",
                    category="legal",
                    opened_at=since,
                    waiting_since=since,
                )
            )
    await desk.woman_writes(DANGER)
    urgent = await desk.newest_case()
    nodira = await desk.browser("nodira")
    page = await nodira.client.get("/console")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    order = [int(n) for n in re.findall(r'href="/console/cases/(\d+)"', page.text)]
    assert order == [urgent.id, urgent.id - 2, urgent.id - 1]
    cards = page.text.split('class="case-card')[1:]
    assert "Urgent" in cards[0]
    assert "waiting under a minute" in cards[0]
    assert "SMS" in cards[0]
    assert "support queue" in cards[0]
    assert "waiting 50 min" in cards[1]
    assert "Telegram" in cards[1]
    assert "Russian" in cards[1]
    assert "legal queue" in cards[1]
    assert 'sse-connect="/console/events?after=' in page.text
    await nodira.post(f"/console/cases/{urgent.id}/claim")
    fragment = await nodira.client.get("/console/queue")
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert "with nodira (you)" in fragment.text.split('class="case-card')[1]


async def test_her_words_are_text_never_markup(desk: Desk) -> None:
    phone = await desk.woman_writes(DANGER)
    await desk.woman_writes(MARKUP, phone=phone)
    case = await desk.newest_case()
    nodira = await desk.browser("nodira")
    for path in (f"/console/cases/{case.id}", f"/console/cases/{case.id}/live"):
        page = await nodira.client.get(path)
        assert page.status_code == 200
        assert "&lt;script&gt;window.ran = 1&lt;/script&gt;" in page.text
        assert "&lt;img src=x onerror=&#34;window.ran = 2&#34;&gt; &amp; &lt;b&gt;бе&lt;/b&gt;" in page.text
        assert "<script>window.ran" not in page.text
        assert "<img src=x" not in page.text
    assert phone not in page.text  # her number is masked


async def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(desk: Desk) -> None:
    await desk.woman_writes(DANGER)
    case = await desk.newest_case()
    nodira = await desk.browser("nodira")
    path = f"/console/cases/{case.id}/claim"
    assert (await nodira.client.post(path)).status_code == 403
    assert (await nodira.client.post(path, data={"csrf": "not-the-token"})).status_code == 403
    assert (await nodira.client.post(path, data={"csrf": ""})).status_code == 403
    assert (await desk.case(case.id)).status == "waiting"
    assert (await nodira.post(path)).status_code == 303
    assert (await desk.case(case.id)).status == "active"


async def test_coordinators_get_403_and_strangers_go_to_login(desk: Desk) -> None:
    await desk.woman_writes(DANGER)
    case = await desk.newest_case()
    coord = await desk.browser("coord")
    page = await coord.client.get("/login")
    coord.csrf = ""
    gets = [
        "/console",
        "/console/queue",
        "/console/events",
        f"/console/cases/{case.id}",
        f"/console/cases/{case.id}/live",
        f"/console/cases/{case.id}/media/1",
    ]
    posts = [
        f"/console/cases/{case.id}/{step}"
        for step in (
            "claim",
            "release",
            "reply",
            "note",
            "transfer",
            "send-now",
            "safe-hours",
            "close",
            "unmask",
        )
    ] + [f"/console/cases/{case.id}/cost"]
    for path in gets:
        assert (await coord.client.get(path)).status_code == 403, path
    stranger = desk.client()
    for path in gets:
        answer = await stranger.get(path)
        assert (answer.status_code, answer.headers.get("location")) == (303, "/login"), path
    for path in posts:
        assert (await stranger.post(path, data={"csrf": "x"})).status_code == 303, path
    answer = await stranger.get("/console/queue", headers={"HX-Request": "true"})
    assert (answer.status_code, answer.headers["HX-Redirect"]) == (401, "/login")
    assert page.status_code in (200, 303)
    assert (await desk.case(case.id)).status == "waiting"


async def test_a_case_from_claim_to_close(desk: Desk) -> None:
    phone = await desk.woman_writes(DANGER)
    case = await desk.newest_case()
    base = f"/console/cases/{case.id}"
    nodira, malika = await desk.browser("nodira"), await desk.browser("malika")

    page = await nodira.client.get(base)
    assert "Claim this case" in page.text
    assert "Write to her" not in page.text
    answer = await nodira.post(f"{base}/claim")
    assert (answer.status_code, answer.headers["location"]) == (303, f"{base}?done=claimed")
    page = await nodira.client.get(answer.headers["location"])
    assert "You have this case now" in page.text
    assert "Write to her" in page.text
    assert "Ready replies" in page.text
    assert "Call 112 if you are in danger" in page.text
    assert "Тоҷикӣ" in page.text
    assert "Русский" in page.text

    # Another counsellor cannot take it or write in it: told why, with her text kept.
    refused = await malika.post(f"{base}/claim")
    assert refused.status_code == 409
    assert "another counsellor has it" in refused.text
    refused = await malika.post(f"{base}/reply", text="Я здесь")
    assert refused.status_code == 409
    assert "Я здесь</textarea>" not in refused.text

    answer = await nodira.post(f"{base}/reply", text="Ман дар ин ҷо ҳастам.")
    assert answer.headers["location"] == f"{base}?done=replied"
    answer = await nodira.post(f"{base}/note", text="She may call back tonight.")
    assert answer.headers["location"] == f"{base}?done=noted"
    empty = await nodira.post(f"{base}/reply", text="   ")
    assert empty.status_code == 422
    assert "the text is empty" in empty.text

    # Safe hours: a reply now waits for them, until "send now".
    desk_clock = desk.hamroh.clock
    hours_from = (desk_clock().astimezone(DUSHANBE).hour + 3) % 24
    hours = f"{hours_from:02d}-{(hours_from + 2) % 24:02d}"
    answer = await nodira.post(f"{base}/safe-hours", hours=hours)
    assert answer.headers["location"] == f"{base}?done=safe_hours"
    answer = await nodira.post(f"{base}/reply", text="Хабар диҳед, вақте ки метавонед.")
    assert answer.headers["location"] == f"{base}?done=held"
    page = await nodira.client.get(f"{base}?done=held")
    assert "1 message waits for her safe hours" in page.text
    assert "Send now, outside her safe hours" in page.text
    answer = await nodira.post(f"{base}/send-now")
    assert answer.headers["location"] == f"{base}?done=sent_now"
    bad = await nodira.post(f"{base}/safe-hours", hours="whenever")
    assert bad.status_code == 422
    assert 'value="whenever"' in bad.text

    page = await nodira.client.get(base)
    assert "Ман дар ин ҷо ҳастам." in page.text
    assert "She may call back tonight." in page.text
    assert "she never sees it" in page.text
    async with transaction(desk.hamroh.engine) as db:
        contact = (await db.exec(select(Contact))).all()
        rows = (await db.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all()
    assert len(contact) == 1
    mine = [r for r in rows if r.kind == "reply"][-2:]
    assert [r.held for r in mine] == [False, False]  # the held one was let go

    # To a queue, back, and closed with an outcome.
    answer = await nodira.post(f"{base}/transfer", to="queue:legal")
    assert answer.headers["location"] == "/console?done=transferred"
    moved = await desk.case(case.id)
    assert (moved.status, moved.queue) == ("waiting", "legal")
    assert (await malika.post(f"{base}/claim")).status_code == 303
    answer = await malika.post(f"{base}/transfer", to="person:nodira")
    assert answer.status_code == 303
    assert (await desk.case(case.id)).counsellor_id is not None
    nothing = await nodira.post(f"{base}/transfer", to="")
    assert nothing.status_code == 422
    assert "choose a colleague or a queue" in nothing.text
    unknown = await nodira.post(f"{base}/close", outcome="vanished", note="")
    assert unknown.status_code == 422
    answer = await nodira.post(f"{base}/close", outcome="safety_plan", note="Plan agreed; she has 112.")
    assert answer.headers["location"] == "/console?done=closed"
    closed = await desk.case(case.id)
    assert (closed.status, closed.outcome) == ("closed", "safety_plan")
    page = await nodira.client.get(base)
    assert "Closed: Safety plan made." in page.text
    assert "Plan agreed; she has 112." in page.text
    assert "Write to her" not in page.text
    async with transaction(desk.hamroh.engine) as db:
        actions = [e.action for e in (await db.exec(select(AuditEntry).order_by(col(AuditEntry.id)))).all()]
    assert {"viewed", "claimed", "wrote", "noted", "safe_hours", "send_now", "transferred", "closed"} <= set(
        actions
    )
    assert phone  # her number never appears in the audit log (checked by the actions' own tests)


async def test_release_gives_the_case_back(desk: Desk) -> None:
    await desk.woman_writes(DANGER)
    case = await desk.newest_case()
    nodira = await desk.browser("nodira")
    await nodira.post(f"/console/cases/{case.id}/claim")
    answer = await nodira.post(f"/console/cases/{case.id}/release")
    assert answer.headers["location"] == "/console?done=released"
    assert (await desk.case(case.id)).status == "waiting"
    page = await nodira.client.get("/console?done=released")
    assert "The case is back in its queue." in page.text


async def test_the_cost_of_an_sms_reply_in_the_letters_she_reads(desk: Desk) -> None:
    await desk.woman_writes(DANGER)
    case = await desk.newest_case()
    nodira = await desk.browser("nodira")
    await nodira.post(f"/console/cases/{case.id}/claim")
    path = f"/console/cases/{case.id}/cost"
    short = await nodira.client.post(path, data={"csrf": nodira.csrf, "text": "Ман дар ин ҷо ҳастам."})
    assert "1 SMS · 21 characters · Cyrillic (UCS-2) · 0.35 TJS" in short.text
    long = await nodira.client.post(path, data={"csrf": nodira.csrf, "text": "ҳ" * 71})
    assert "2 SMS · 71 characters" in long.text
    assert "0.70 TJS" in long.text
    assert (await nodira.client.post(path, data={"text": "x"})).status_code == 403
    async with transaction(desk.hamroh.engine) as db:
        contact = (await db.exec(select(Contact))).one()
        contact.script = "latin"
        db.add(contact)
    latin = await nodira.client.post(path, data={"csrf": nodira.csrf, "text": "Ман дар ин ҷо ҳастам."})
    assert "Latin letters (GSM-7)" in latin.text
    assert "She reads Latin letters" in latin.text
    assert "It leaves as:" in latin.text
    too_long = await nodira.client.post(path, data={"csrf": nodira.csrf, "text": "a" * 1601})
    assert "Too long" in too_long.text


async def test_only_supervisors_on_urgent_cases_and_admins_unmask_her_number(desk: Desk) -> None:
    phone = await desk.woman_writes(DANGER)
    case = await desk.newest_case()
    base = f"/console/cases/{case.id}"
    nodira, farida, admin = (
        (await desk.browser(n) for n in ("nodira", "farida", "admin")).__aiter__(),
        None,
        None,
    )
    del nodira, farida, admin
    nodira = await desk.browser("nodira")
    farida = await desk.browser("farida")
    admin = await desk.browser("admin")
    assert "Show her full number" not in (await nodira.client.get(base)).text
    refused = await nodira.post(f"{base}/unmask")
    assert refused.status_code == 403
    assert phone not in refused.text
    page = await farida.client.get(base)
    assert "Show her full number" in page.text
    assert phone not in page.text
    shown = await farida.post(f"{base}/unmask")
    assert shown.status_code == 200
    assert f"<strong>{phone}</strong>" in shown.text
    assert shown.headers["cache-control"] == "no-store"
    assert phone in (await admin.post(f"{base}/unmask")).text
    async with transaction(desk.hamroh.engine) as db:
        entries = (await db.exec(select(AuditEntry).where(AuditEntry.action == "unmasked"))).all()
    assert sorted(e.staff_name for e in entries) == ["admin", "farida"]
    assert all(phone not in e.detail for e in entries)


async def test_an_erased_case_says_she_deleted_her_data(desk: Desk) -> None:
    phone = await desk.woman_writes(DANGER)
    case = await desk.newest_case()
    assert phone
    async with transaction(desk.hamroh.engine) as db:  # what "delete my data" does, in its transaction
        assert case.contact_id is not None
        await intake.empty_for_erasure(db, case.contact_id, desk.hamroh.clock())
        await erase.everything(db, case.contact_id)
    gone = await desk.case(case.id)
    assert gone.contact_id is None
    nodira = await desk.browser("nodira")
    page = await nodira.client.get(f"/console/cases/{case.id}")
    assert "She deleted her data." in page.text
    assert "Write to her" not in page.text
    assert "Claim this case" not in page.text
    assert (await nodira.client.get("/console/cases/999999")).status_code == 404


async def test_a_telegram_photo_is_fetched_from_the_bot_api_when_opened(
    tmp_path: Path, database_url: str, hamroh: Hamroh
) -> None:
    with FakeTelegram() as telegram:
        content = b"\xff\xd8\xff\xe0 a photo she sent"
        telegram.add_file("AgACphoto", content)
        settings = desk_settings(
            tmp_path,
            database_url,
            telegram_token=telegram.token,
            telegram_secret="console-secret",
            telegram_api_url=telegram.api_url,
        )
        async with _desk(settings, hamroh) as made:
            chat = "tg:4242"
            await made.woman_writes(DANGER, phone=chat, channel="telegram")
            await hamroh.handle(
                Inbound("telegram", chat, media=True, media_ref={"kind": "photo", "file_id": "AgACphoto"})
            )
            await hamroh.handle(
                Inbound("telegram", chat, media=True, media_ref={"kind": "voice", "file_id": "gone"})
            )
            case = await made.newest_case()
            nodira = await made.browser("nodira")
            page = await nodira.client.get(f"/console/cases/{case.id}")
            links = re.findall(rf'href="(/console/cases/{case.id}/media/\d+)"', page.text)
            assert len(links) == 2
            assert "Open the photo she sent" in page.text
            answer = await nodira.client.get(links[0])
            assert answer.status_code == 200
            assert answer.content == content
            assert answer.headers["content-type"] == "image/jpeg"
            assert answer.headers["cache-control"] == "no-store"
            assert "sandbox" in answer.headers["content-security-policy"]
            assert [c.params["file_id"] for c in telegram.calls_to("getFile")] == ["AgACphoto"]
            assert len(telegram.calls_to("download")) == 1
            assert (await nodira.client.get(links[1])).status_code == 502  # Telegram no longer has it
            first_line = int(links[0].rsplit("/", 1)[1])
            assert (
                await nodira.client.get(f"/console/cases/{case.id}/media/{first_line - 1}")
            ).status_code == 404
            assert (
                await nodira.client.get(f"/console/cases/{case.id + 1}/media/{first_line}")
            ).status_code == 404
            async with transaction(hamroh.engine) as db:
                audited = (await db.exec(select(AuditEntry).where(AuditEntry.action == "media"))).all()
            assert [e.detail for e in audited] == ["photo", "voice"]


# --- data files --------------------------------------------------------------------------------------------


def test_the_canned_replies_are_few_short_and_state_no_fact_but_112() -> None:
    replies = load(ROOT / "flows" / "canned.yaml")
    assert 6 <= len(replies) <= 10
    for reply in replies:
        for text in (reply.tg, reply.ru):
            assert len(text) <= 140, reply.id  # two Cyrillic SMS at most
            assert set(re.findall(r"\d+", text)) <= {"112"}, reply.id


def test_a_broken_canned_file_is_reported_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "canned.yaml"
    path.write_text("replies:\n  - id: here\n    title: Here\n    tg: Ман\n", encoding="utf-8")
    with pytest.raises(CannedError, match=r"canned.yaml: replies.0.ru: Field required"):
        load(path)
    replies, problem = Canned(path).read()
    assert replies == ()
    assert problem is not None
    path.write_text("replies: [", encoding="utf-8")
    with pytest.raises(CannedError, match="not valid YAML"):
        load(path)


def test_the_chime_is_the_one_made_here() -> None:
    assert CHIME_PATH.read_bytes() == chime()


async def test_admins_read_the_audit_log_and_no_one_else(desk: Desk) -> None:
    await desk.woman_writes(DANGER)
    case = await desk.newest_case()
    nodira, admin = await desk.browser("nodira"), await desk.browser("admin")
    await nodira.client.get(f"/console/cases/{case.id}")
    await nodira.post(f"/console/cases/{case.id}/claim")
    assert (await nodira.client.get("/console/audit")).status_code == 403
    assert "Audit log" not in (await nodira.client.get("/console")).text
    assert 'href="/console/audit"' in (await admin.client.get("/console")).text
    log = await admin.client.get(f"/console/audit?case={case.id}")
    assert log.status_code == 200
    rows = re.findall(r"<td>nodira</td>\s*<td>(\w+)</td>", log.text)
    assert rows == ["claimed", "viewed"]  # newest first
    assert "+992" not in log.text  # never her address
    assert (await admin.client.get("/console/audit?before=0")).status_code == 422
