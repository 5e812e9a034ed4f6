"""What staff do to cases, as stories: a case waits, is claimed, answered, noted, moved and closed; and what
may not happen (someone else's case, a closed one, a role that may not), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.cases import actions, views
from bot.cases.actions import CaseConflict, CaseForbidden, CaseInvalid, CaseNotFound
from bot.store import AuditEntry, Case, CaseEvent, ConsoleEvent, Contact, OutboxMessage, Staff
from bot.store.crypto import Vault
from bot.store.db import create_engine, transaction
from tests.conftest import Clock, telegram_contact

CHAT = "tg:700100"
OTHER_CHAT = "tg:700200"
PHONE = "+992901234567"
STAFF = {
    "dilnoza": "counsellor",
    "farida": "counsellor",
    "malika": "supervisor",
    "rustam": "admin",
    "zarina": "coordinator",
}


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def add_staff(engine: AsyncEngine, now: datetime) -> dict[str, Staff]:
    """The team of these stories, by name."""
    async with transaction(engine) as db:
        people = {
            name: Staff(name=name, role=role, password_hash="-", created_at=now)
            for name, role in STAFF.items()
        }
        db.add_all(people.values())
        await db.flush()
    return people


async def open_case(
    engine: AsyncEngine,
    vault: Vault,
    now: datetime,
    *,
    address: str = CHAT,
    priority: str = "normal",
    queue: str = "support",
    category: str = "emotional_support",
    script: str = "cyrillic",
) -> int:
    """A woman writes and asks for a counsellor: her contact and a waiting case."""
    async with transaction(engine) as db:
        contact = telegram_contact(vault, address, now)
        if not address.startswith("tg:"):
            contact.channel = "sms"
        contact.script, contact.lang = script, "tg"
        db.add(contact)
        await db.flush()
        case = Case(
            contact_id=contact.id,
            channel=contact.channel,
            lang="tg",
            queue=queue,
            priority=priority,
            priority_rank=0 if priority == "urgent" else 1,
            category=category,
            topics=json.dumps(["legal.alimony", "support.menu"]),
            opened_at=now,
            waiting_since=now,
            last_her_at=now,
        )
        db.add(case)
        await db.flush()
        assert case.id is not None
        return case.id


async def rows(engine: AsyncEngine, table: Any) -> list[Any]:
    async with transaction(engine) as db:
        return list((await db.exec(select(table).order_by(col(table.id)))).all())


def opened(vault: Vault, row: OutboxMessage) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(vault.open(row.body))
    return body


async def test_a_case_waits_is_claimed_answered_noted_and_closed(
    engine: AsyncEngine, vault: Vault, clock: Clock
) -> None:
    team = await add_staff(engine, clock.now)
    calm = await open_case(engine, vault, clock.now)
    clock.advance(minutes=5)
    danger = await open_case(
        engine, vault, clock.now, address=OTHER_CHAT, priority="urgent", category="violence"
    )

    async with transaction(engine) as db:
        queue = await views.list_cases(db, vault, status="waiting", now=clock.now)
    assert [c.id for c in queue] == [danger, calm]  # urgent first, though newer
    assert queue[1].waiting_for == timedelta(minutes=5)
    assert queue[0].address == "tg:7…00"
    assert CHAT not in repr(queue)

    clock.advance(minutes=1)
    async with transaction(engine) as db:
        case = await actions.claim(db, case_id=danger, staff=team["dilnoza"], now=clock.now)
    assert (case.status, case.counsellor_id, case.claimed_at) == ("active", team["dilnoza"].id, clock.now)

    async with transaction(engine) as db:
        message = await actions.reply(
            db, vault, case_id=danger, staff=team["dilnoza"], text="Салом, ман Дилноза.", now=clock.now
        )
        await actions.add_note(
            db, vault, case_id=danger, staff=team["dilnoza"], text="husband home at 7", now=clock.now
        )
    assert message.author == "staff"
    (row,) = await rows(engine, OutboxMessage)
    assert b"Salom" not in row.body
    assert "Дилноза".encode() not in row.body
    assert opened(vault, row)["text"] == "Салом, ман Дилноза."
    assert (row.channel, row.held, row.status) == ("telegram", False, "queued")
    assert vault.open(row.address) == OTHER_CHAT

    clock.advance(minutes=30)
    async with transaction(engine) as db:
        closed = await actions.close(
            db,
            vault,
            case_id=danger,
            staff=team["dilnoza"],
            outcome="safety_plan",
            note="plan agreed",
            now=clock.now,
        )
    assert (closed.status, closed.outcome, closed.closed_at) == ("closed", "safety_plan", clock.now)
    assert closed.note is not None
    assert b"plan agreed" not in closed.note

    async with transaction(engine) as db:
        detail = await views.case_detail(db, vault, case_id=danger)
        active = await views.list_cases(db, vault, status="active", now=clock.now)
        open_cases = await views.list_cases(db, vault, now=clock.now)
    assert [(m.author, m.text) for m in detail.messages] == [
        ("staff", "Салом, ман Дилноза."),
        ("note", "husband home at 7"),
    ]
    assert (detail.outcome, detail.note, detail.held, detail.erased) == (
        "safety_plan",
        "plan agreed",
        0,
        False,
    )
    assert detail.topics == ["legal.alimony", "support.menu"]
    assert detail.summary.counsellor == "dilnoza"
    assert active == []
    assert [c.id for c in open_cases] == [calm]

    events = await rows(engine, CaseEvent)
    assert [(e.kind, e.outcome) for e in events] == [("claimed", None), ("closed", "safety_plan")]
    assert events[0].seconds_to_claim == 60
    assert events[1].seconds_to_close == 31 * 60
    audit = await rows(engine, AuditEntry)
    assert [(a.staff_name, a.action, a.case_id) for a in audit] == [
        ("dilnoza", "claimed", danger),
        ("dilnoza", "wrote", danger),
        ("dilnoza", "noted", danger),
        ("dilnoza", "closed", danger),
    ]
    assert all(
        "Дилноза" not in a.detail and "husband" not in a.detail and "700" not in a.detail for a in audit
    )
    feed = await rows(engine, ConsoleEvent)
    assert [e.kind for e in feed] == ["case_claimed", "case_message", "case_message", "case_closed"]
    async with transaction(engine) as db:
        stored = await db.get(Case, danger)
    assert stored is not None
    assert stored.last_staff_at == clock.now - timedelta(minutes=30)


async def test_a_reply_waits_for_her_safe_hours_unless_sent_now(
    engine: AsyncEngine, vault: Vault, clock: Clock
) -> None:
    team = await add_staff(engine, clock.now)
    case_id = await open_case(engine, vault, clock.now, address=PHONE, script="latin")
    dilnoza = team["dilnoza"]
    async with transaction(engine) as db:
        await actions.claim(db, case_id=case_id, staff=dilnoza, now=clock.now)
        with pytest.raises(CaseInvalid, match="18-21"):
            await actions.set_safe_hours(
                db, case_id=case_id, staff=dilnoza, hours="after dinner", now=clock.now
            )
        # 09:00 UTC is 14:00 in Dushanbe: her evening hours are later today.
        case = await actions.set_safe_hours(db, case_id=case_id, staff=dilnoza, hours="18-21", now=clock.now)
        await actions.reply(
            db, vault, case_id=case.id or 0, staff=dilnoza, text="Салом! Ҳамааш хуб?", now=clock.now
        )
    (held,) = await rows(engine, OutboxMessage)
    assert held.held
    assert held.next_attempt_at == datetime(2026, 11, 28, 13, 0, tzinfo=UTC)
    assert opened(vault, held) == {"text": "Salom! Hamaash khub?"}  # SMS, in the Latin letters she chose
    async with transaction(engine) as db:
        detail = await views.case_detail(db, vault, case_id=case_id)
        contact = await db.get(Contact, held.contact_id)
    assert (detail.safe_hours, detail.held, detail.script, detail.summary.channel) == (
        "18:00-21:00",
        1,
        "latin",
        "sms",
    )
    assert contact is not None
    assert contact.safe_hours == "18:00-21:00"

    async with transaction(engine) as db:
        assert await actions.send_held_now(db, case_id=case_id, staff=dilnoza, now=clock.now) == 1
        await actions.reply(
            db, vault, case_id=case_id, staff=dilnoza, text="Urgent", now=clock.now, send_now=True
        )
    first, second = await rows(engine, OutboxMessage)
    assert not first.held
    assert first.next_attempt_at == clock.now
    assert not second.held
    assert second.next_attempt_at == clock.now

    # Held messages follow her hours when she changes them, and leave at once when any time is fine.
    async with transaction(engine) as db:
        await actions.reply(db, vault, case_id=case_id, staff=dilnoza, text="Later", now=clock.now)
        await actions.set_safe_hours(db, case_id=case_id, staff=dilnoza, hours="20-22", now=clock.now)
    assert (await rows(engine, OutboxMessage))[2].next_attempt_at == datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
    async with transaction(engine) as db:
        await actions.set_safe_hours(db, case_id=case_id, staff=dilnoza, hours=None, now=clock.now)
    third = (await rows(engine, OutboxMessage))[2]
    assert not third.held
    assert third.next_attempt_at == clock.now

    # "Send now" on a reply lets what waited before it go first: her messages leave in the order written.
    async with transaction(engine) as db:
        await actions.set_safe_hours(db, case_id=case_id, staff=dilnoza, hours="20-22", now=clock.now)
        await actions.reply(db, vault, case_id=case_id, staff=dilnoza, text="Waits", now=clock.now)
        await actions.reply(
            db, vault, case_id=case_id, staff=dilnoza, text="Now", now=clock.now, send_now=True
        )
    waited, now_sent = (await rows(engine, OutboxMessage))[3:]
    assert (waited.held, waited.next_attempt_at) == (False, clock.now)
    assert (now_sent.held, now_sent.next_attempt_at) == (False, clock.now)

    audit = [(a.action, a.detail) for a in await rows(engine, AuditEntry)]
    assert audit == [
        ("claimed", ""),
        ("safe_hours", "set"),
        ("wrote", ""),
        ("send_now", "1 held"),
        ("wrote", ""),
        ("send_now", "reply"),
        ("wrote", ""),
        ("safe_hours", "set"),
        ("safe_hours", "any time"),
        ("safe_hours", "set"),
        ("wrote", ""),
        ("wrote", ""),
        ("send_now", "reply"),
    ]


async def test_only_the_holder_acts_and_closed_cases_stay_closed(
    engine: AsyncEngine, vault: Vault, clock: Clock
) -> None:
    team = await add_staff(engine, clock.now)
    case_id = await open_case(engine, vault, clock.now)
    dilnoza, farida, malika, zarina = (team[n] for n in ("dilnoza", "farida", "malika", "zarina"))

    async def attempt(step: Any) -> None:
        async with transaction(engine) as db:
            await step(db)

    with pytest.raises(CaseConflict, match="claim it first"):
        await attempt(
            lambda db: actions.reply(db, vault, case_id=case_id, staff=dilnoza, text="hi", now=clock.now)
        )
    with pytest.raises(CaseForbidden):
        await attempt(lambda db: actions.claim(db, case_id=case_id, staff=zarina, now=clock.now))
    with pytest.raises(CaseNotFound):
        await attempt(lambda db: actions.claim(db, case_id=case_id + 99, staff=dilnoza, now=clock.now))
    await attempt(lambda db: actions.claim(db, case_id=case_id, staff=dilnoza, now=clock.now))
    await attempt(
        lambda db: actions.claim(db, case_id=case_id, staff=dilnoza, now=clock.now)
    )  # again: no change
    with pytest.raises(CaseConflict, match="another counsellor"):
        await attempt(lambda db: actions.claim(db, case_id=case_id, staff=farida, now=clock.now))
    for step in (
        lambda db: actions.reply(db, vault, case_id=case_id, staff=farida, text="hi", now=clock.now),
        lambda db: actions.add_note(db, vault, case_id=case_id, staff=farida, text="hi", now=clock.now),
        lambda db: actions.release(db, case_id=case_id, staff=farida, now=clock.now),
        lambda db: actions.send_held_now(db, case_id=case_id, staff=farida, now=clock.now),
        lambda db: actions.close(
            db, vault, case_id=case_id, staff=farida, outcome="other", note="", now=clock.now
        ),
        lambda db: actions.transfer(db, case_id=case_id, staff=farida, to_queue="legal", now=clock.now),
    ):
        with pytest.raises(CaseConflict):
            await attempt(step)
    for text in ("", "   ", "x" * 1601):
        with pytest.raises(CaseInvalid):
            await attempt(
                lambda db, text=text: actions.reply(
                    db, vault, case_id=case_id, staff=dilnoza, text=text, now=clock.now
                )
            )
    with pytest.raises(CaseInvalid, match="outcome"):
        await attempt(
            lambda db: actions.close(
                db, vault, case_id=case_id, staff=dilnoza, outcome="erased", note="", now=clock.now
            )
        )

    # A supervisor may close a case another counsellor holds; then nobody acts on it any more.
    await attempt(
        lambda db: actions.close(
            db, vault, case_id=case_id, staff=malika, outcome="no_contact", note="", now=clock.now
        )
    )
    for step in (
        lambda db: actions.claim(db, case_id=case_id, staff=farida, now=clock.now),
        lambda db: actions.reply(db, vault, case_id=case_id, staff=dilnoza, text="hi", now=clock.now),
        lambda db: actions.close(
            db, vault, case_id=case_id, staff=malika, outcome="other", note="", now=clock.now
        ),
        lambda db: actions.transfer(db, case_id=case_id, staff=malika, to_staff="farida", now=clock.now),
    ):
        with pytest.raises(CaseConflict, match="closed"):
            await attempt(step)
    assert [a.action for a in await rows(engine, AuditEntry)] == ["claimed", "closed"]
    assert [e.kind for e in await rows(engine, CaseEvent)] == ["claimed", "closed"]


async def test_a_case_moves_to_a_colleague_to_a_queue_and_back(
    engine: AsyncEngine, vault: Vault, clock: Clock
) -> None:
    team = await add_staff(engine, clock.now)
    case_id = await open_case(engine, vault, clock.now)
    dilnoza, farida, malika = team["dilnoza"], team["farida"], team["malika"]
    async with transaction(engine) as db:
        await actions.claim(db, case_id=case_id, staff=dilnoza, now=clock.now)
        moved = await actions.transfer(db, case_id=case_id, staff=dilnoza, to_staff="farida", now=clock.now)
    assert (moved.status, moved.counsellor_id) == ("active", farida.id)

    for target in ({"to_staff": "nobody"}, {"to_staff": "zarina"}, {"to_queue": "nowhere"}, {}):
        with pytest.raises(CaseInvalid):
            async with transaction(engine) as db:
                await actions.transfer(db, case_id=case_id, staff=farida, now=clock.now, **target)
    async with transaction(engine) as db:
        disabled = await db.get(Staff, dilnoza.id)
        assert disabled is not None
        disabled.disabled = True
        db.add(disabled)
    with pytest.raises(CaseInvalid, match="no active"):
        async with transaction(engine) as db:
            await actions.transfer(db, case_id=case_id, staff=farida, to_staff="dilnoza", now=clock.now)

    clock.advance(minutes=10)
    async with transaction(engine) as db:
        waiting = await actions.transfer(db, case_id=case_id, staff=farida, to_queue="legal", now=clock.now)
    assert (waiting.status, waiting.counsellor_id, waiting.queue, waiting.waiting_since) == (
        "waiting",
        None,
        "legal",
        clock.now,
    )
    # A supervisor may hand even a waiting case to someone, and its holder may give it back.
    async with transaction(engine) as db:
        await actions.transfer(db, case_id=case_id, staff=malika, to_staff="farida", now=clock.now)
        clock.advance(minutes=1)
        back = await actions.release(db, case_id=case_id, staff=farida, now=clock.now)
    assert (back.status, back.counsellor_id, back.waiting_since) == ("waiting", None, clock.now)

    assert [(e.kind, e.queue) for e in await rows(engine, CaseEvent)] == [
        ("claimed", "support"),
        ("transferred", "support"),
        ("transferred", "legal"),
        ("transferred", "legal"),
        ("returned", "legal"),
    ]
    assert [(a.staff_name, a.action, a.detail) for a in await rows(engine, AuditEntry)] == [
        ("dilnoza", "claimed", ""),
        ("dilnoza", "transferred", "to farida"),
        ("farida", "transferred", "to queue legal"),
        ("malika", "transferred", "to farida"),
        ("farida", "released", ""),
    ]
    assert [e.kind for e in await rows(engine, ConsoleEvent)] == [
        "case_claimed",
        "case_transferred",
        "case_transferred",
        "case_transferred",
        "case_returned",
    ]


async def test_her_full_address_only_for_supervisors_on_urgent_cases_and_admins(
    engine: AsyncEngine, vault: Vault, clock: Clock
) -> None:
    team = await add_staff(engine, clock.now)
    calm = await open_case(engine, vault, clock.now)
    urgent = await open_case(engine, vault, clock.now, address=PHONE, priority="urgent")
    refused = [("dilnoza", urgent), ("malika", calm), ("zarina", urgent)]
    for name, case_id in refused:
        with pytest.raises(CaseForbidden):
            async with transaction(engine) as db:
                await actions.unmask(db, vault, case_id=case_id, staff=team[name], now=clock.now)
    async with transaction(engine) as db:
        assert await actions.unmask(db, vault, case_id=urgent, staff=team["malika"], now=clock.now) == PHONE
        assert await actions.unmask(db, vault, case_id=calm, staff=team["rustam"], now=clock.now) == CHAT
    audit = await rows(engine, AuditEntry)
    assert [(a.staff_name, a.action, a.detail) for a in audit] == [
        ("malika", "unmasked", ""),
        ("rustam", "unmasked", ""),
    ]


async def test_an_erased_case_shows_no_address_and_takes_no_reply(
    engine: AsyncEngine, vault: Vault, clock: Clock
) -> None:
    team = await add_staff(engine, clock.now)
    case_id = await open_case(engine, vault, clock.now)
    async with transaction(engine) as db:
        await actions.claim(db, case_id=case_id, staff=team["dilnoza"], now=clock.now)
        case = await db.get(Case, case_id)
        assert case is not None
        contact = await db.get(Contact, case.contact_id)
        await db.delete(contact)  # what her erasure leaves: the case, pointing to no one
        case.contact_id = None
        db.add(case)
    with pytest.raises(CaseConflict, match="erased"):
        async with transaction(engine) as db:
            await actions.reply(db, vault, case_id=case_id, staff=team["dilnoza"], text="hi", now=clock.now)
    async with transaction(engine) as db:
        case = await db.get(Case, case_id)
        assert case is not None
        case.status, case.outcome = "closed", "erased"
        db.add(case)
    async with transaction(engine) as db:
        (summary,) = await views.list_cases(db, vault, status="closed", now=clock.now)
        detail = await views.case_detail(db, vault, case_id=case_id)
        with pytest.raises(CaseNotFound):
            await views.case_detail(db, vault, case_id=case_id + 1)
    assert summary.address is None
    assert summary.counsellor == "dilnoza"
    assert detail.erased
    assert detail.held == 0
    assert detail.safe_hours is None


@pytest.mark.postgres
async def test_two_claims_at_once_one_wins(postgres_url: str, vault: Vault, clock: Clock) -> None:
    engines = [create_engine(postgres_url), create_engine(postgres_url)]
    try:
        team = await add_staff(engines[0], clock.now)
        case_id = await open_case(engines[0], vault, clock.now)
        barrier = asyncio.Barrier(2)

        async def try_claim(engine: AsyncEngine, name: str) -> str:
            async with transaction(engine) as db:
                await db.connection()  # both transactions are open before either claims
                await barrier.wait()
                try:
                    await actions.claim(db, case_id=case_id, staff=team[name], now=clock.now)
                except CaseConflict:
                    return "lost"
                return "won"

        results = await asyncio.gather(try_claim(engines[0], "dilnoza"), try_claim(engines[1], "farida"))
        assert sorted(results) == ["lost", "won"]
        winner = "dilnoza" if results[0] == "won" else "farida"
        (case,) = await rows(engines[0], Case)
        assert case.counsellor_id == team[winner].id
        assert [a.staff_name for a in await rows(engines[0], AuditEntry)] == [winner]
        assert [e.kind for e in await rows(engines[0], CaseEvent)] == ["claimed"]
    finally:
        for engine in engines:
            await engine.dispose()
