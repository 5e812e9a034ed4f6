"""The turn's own statements (bot/store/turns.py) and what they keep: one delivery, one session, her lock."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any

import aiosqlite
import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlmodel import select

from bot import outbox
from bot.conversation.flows import FlowSet
from bot.service import Hamroh, Inbound, count_rows
from bot.store import (
    ChatMessage,
    Contact,
    ConversationState,
    Delivery,
    OutboxMessage,
    RequestLogEntry,
    turns,
)
from bot.store.crypto import Vault, normalise_address
from bot.store.db import create_engine, transaction
from bot.store.direct import Redelivered
from tests.conftest import Clock, Tokens

PHONE = "+992 90 123 45 67"


async def test_a_delivery_is_recorded_once_and_a_session_written_whether_new_or_not(
    small_hamroh: Hamroh, clock: Clock
) -> None:
    await small_hamroh.handle(Inbound("sms", PHONE, "hi", provider_id="SM1"))
    fingerprint = small_hamroh.vault.fingerprint(normalise_address("sms", PHONE))

    async def again() -> None:
        async with turns.turn_transaction(small_hamroh.engine) as db:
            her, _ = await turns.her_contact_and_session(db, fingerprint)
            assert her is not None
            await turns.record_delivery(db, channel="sms", provider_id="SM1", contact_id=her.id, now=clock())
            turns.save_session(db, contact_id=her.id, state='{"node": "lost"}', now=clock())

    with pytest.raises(Redelivered):  # at once on SQLite; with the turn's last statement on PostgreSQL
        await again()
    async with turns.turn_transaction(small_hamroh.engine) as db:
        contact, state = await turns.her_contact_and_session(db, fingerprint)
        assert contact is not None
        assert state is not None
        assert '"lost"' not in state  # the redelivered turn's writes were rolled back
        await turns.record_delivery(
            db, channel="telegram", provider_id="SM1", contact_id=contact.id, now=clock()
        )  # the same id on another channel is another message
        turns.save_session(db, contact_id=contact.id, state='{"node": "x"}', now=clock())
        assert await turns.her_contact_and_session(db, "nobody") == (None, None)
    async with transaction(small_hamroh.engine) as db:
        assert await count_rows(db, Delivery) == 2
        (session,) = (await db.exec(select(ConversationState))).all()
        assert session.state == '{"node": "x"}'


async def test_a_redelivery_of_the_message_that_erased_her_leaves_no_contact(hamroh: Hamroh) -> None:
    # The duplicate check now runs after her contact is looked up (and made anew, as for a first
    # message): a redelivery rolls all of that back.
    for n, text in enumerate(("Салом", "1", "нест кунед"), start=1):
        await hamroh.handle(Inbound("sms", PHONE, text, provider_id=f"e{n}"))
    erased = await hamroh.handle(Inbound("sms", PHONE, "1", provider_id="e4"))  # yes, delete
    assert erased.contact_id is None
    assert erased.outbox_ids
    again = await hamroh.handle(Inbound("sms", PHONE, "1", provider_id="e4"))
    assert again.duplicate
    assert not again.outbox_ids
    async with transaction(hamroh.engine) as db:
        assert await count_rows(db, Contact) == 0
        assert await count_rows(db, ConversationState) == 0
        assert await count_rows(db, OutboxMessage) == len(erased.outbox_ids)  # her earlier replies went too
        (delivery,) = (await db.exec(select(Delivery))).all()
        assert (delivery.provider_id, delivery.contact_id) == ("e4", None)


async def test_a_redelivery_in_a_new_month_keeps_her_pseudonym(small_hamroh: Hamroh, clock: Clock) -> None:
    await small_hamroh.handle(Inbound("sms", PHONE, "hi", provider_id="p1"))
    async with transaction(small_hamroh.engine) as db:
        (before,) = (await db.exec(select(Contact))).all()
    clock.advance(days=40)
    assert (await small_hamroh.handle(Inbound("sms", PHONE, "hi", provider_id="p1"))).duplicate
    async with transaction(small_hamroh.engine) as db:
        (after,) = (await db.exec(select(Contact))).all()
    assert (after.pseudonym, after.pseudonym_month) == (before.pseudonym, before.pseudonym_month)


async def test_her_messages_at_once_take_turns_and_every_one_lands(small_hamroh: Hamroh) -> None:
    await small_hamroh.handle(Inbound("sms", PHONE, "hi", provider_id="t0"))
    results = await asyncio.gather(
        *(small_hamroh.handle(Inbound("sms", PHONE, "1", provider_id=f"t{n}")) for n in range(1, 6))
    )
    assert not any(r.duplicate for r in results)
    async with transaction(small_hamroh.engine) as db:
        assert await count_rows(db, Delivery) == 6
        assert await count_rows(db, Contact) == 1


@pytest.mark.postgres
async def test_connections_the_server_dropped_fail_one_turn_and_the_next_lands(
    postgres_url: str, small_flows: FlowSet, vault: Vault, clock: Clock
) -> None:
    """No ping before each checkout: a turn on a dropped connection fails (the webhook answers 503 and the
    provider delivers again); the pool then replaces its connections and the redelivery lands once."""
    engine = create_engine(postgres_url, command_timeout=5)  # as serving makes it
    hamroh = Hamroh(engine=engine, flows=small_flows, vault=vault, clock=clock, new_token=Tokens())
    try:
        await asyncio.gather(*(hamroh.handle(Inbound("sms", f"+99290000000{n}", "hi")) for n in range(3)))
        database = make_url(postgres_url).database
        admin = await asyncpg.connect(make_url(postgres_url).set(database="postgres").render_as_string(False))
        try:
            ended = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1", database
            )
        finally:
            await admin.close()
        assert ended >= 1
        message = Inbound("sms", PHONE, "hi", provider_id="d1")
        with pytest.raises(Exception):  # noqa: B017, PT011 - whichever error the driver gives a dead socket
            await hamroh.handle(message)
        assert not (await hamroh.handle(message)).duplicate  # the redelivery: a fresh connection
        assert (await hamroh.handle(message)).duplicate
        async with transaction(engine) as db:
            assert await count_rows(db, Delivery) == 1
    finally:
        await engine.dispose()


async def test_her_first_messages_at_once_make_one_contact_and_every_one_lands(small_hamroh: Hamroh) -> None:
    # Both turns find no contact and make one; the unique fingerprint stops the second, whose turn rolls
    # back and runs again, finding hers (on PostgreSQL the error comes from asyncpg, not SQLAlchemy).
    results = await asyncio.gather(
        *(small_hamroh.handle(Inbound("sms", PHONE, "hi", provider_id=f"f{n}")) for n in range(4))
    )
    assert not any(r.duplicate for r in results)
    assert len({r.contact_id for r in results}) == 1
    async with transaction(small_hamroh.engine) as db:
        assert await count_rows(db, Contact) == 1
        assert await count_rows(db, Delivery) == 4


async def test_a_second_contact_with_her_fingerprint_is_refused_as_sqlalchemy_refuses_it(
    small_hamroh: Hamroh, clock: Clock
) -> None:
    """Whichever driver runs the turn's statements, a broken constraint is SQLAlchemy's IntegrityError: the
    service retries her racing first messages on it."""
    await small_hamroh.handle(Inbound("sms", PHONE, "hi", provider_id="SM1"))
    vault = small_hamroh.vault
    address = normalise_address("sms", PHONE)
    values = {
        "channel": "sms",
        "fingerprint": vault.fingerprint(address),
        "address": vault.seal(address),
        "pseudonym": "p",
        "pseudonym_month": "2026-11",
        "created_at": clock(),
    }

    async def made_again() -> None:
        async with turns.turn_transaction(small_hamroh.engine) as db:
            await turns.her_contact_and_session(db, "nobody")
            await turns.new_contact(db, values)

    with pytest.raises(sa.exc.IntegrityError):
        await made_again()
    async with transaction(small_hamroh.engine) as db:
        assert await count_rows(db, Contact) == 1


async def test_outbox_rows_of_one_insert_are_as_the_model_makes_them_and_in_the_order_given(
    small_hamroh: Hamroh, clock: Clock
) -> None:
    vault = small_hamroh.vault
    made = [
        outbox.values(
            vault,
            contact_id=None,
            channel="sms",
            sealed_address=vault.seal("+992901234567"),
            body={"text": f"reply {n}"},
            now=clock(),
            kind="command" if n == 1 else "reply",
        )
        for n in range(5)
    ]
    async with turns.turn_transaction(small_hamroh.engine) as db:
        await turns.her_contact_and_session(db, "nobody")  # a turn's first statement begins its transaction
        ids = await turns.add_outbox(db, made)
    assert list(ids) == sorted(ids)
    async with transaction(small_hamroh.engine) as db:
        rows = {row.id: row for row in (await db.exec(select(OutboxMessage))).all()}
    model = OutboxMessage(**made[0])  # the defaults of every column not given
    for n, row_id in enumerate(ids):
        row = rows[row_id]
        assert json.loads(vault.open(row.body)) == {"text": f"reply {n}"}
        assert row.kind == ("command" if n == 1 else "reply")
        for name in ("priority", "status", "ephemeral", "attempts", "held", "in_doubt", "provider_id"):
            assert getattr(row, name) == getattr(model, name), name
        assert row.next_attempt_at == clock()


async def test_a_plain_turn_runs_every_statement_on_the_driver_and_none_through_sqlalchemy(
    database_url: str, small_flows: FlowSet, vault: Vault, clock: Clock
) -> None:
    """PostgreSQL: BEGIN goes as SQLAlchemy's adapter sends it, every statement to asyncpg as compiled once
    (her contact's SELECT too). SQLite: sqlite3 runs them on the event loop's thread, inside the
    transaction begun IMMEDIATE. A statement that fell back to SQLAlchemy would show here."""
    engine = create_engine(database_url)
    through_sqlalchemy: list[str] = []
    sa.event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: through_sqlalchemy.append(a[2]))
    hamroh = Hamroh(engine=engine, flows=small_flows, vault=vault, clock=clock, new_token=Tokens())
    try:
        await hamroh.handle(Inbound("telegram", "5551234", "hi", provider_id="u1", message_id=7))
        clock.advance(days=40)  # a new month: her contact changes too (a new pseudonym)
        through_sqlalchemy.clear()
        outcome = await hamroh.handle(Inbound("telegram", "5551234", "1", provider_id="u2", message_id=8))
        assert outcome.outbox_ids
        assert all("FROM courses" in sql for sql in through_sqlalchemy)  # read once a minute
        async with transaction(engine) as db:
            assert await count_rows(db, ChatMessage) == 2
            assert await count_rows(db, Delivery) == 2
            (contact,) = (await db.exec(select(Contact))).all()
            assert contact.pseudonym_month == clock().strftime("%Y-%m")
            (state,) = (await db.exec(select(ConversationState))).all()
            assert state.updated_at == clock()
    finally:
        await engine.dispose()


async def test_on_sqlite_her_contact_reads_as_sqlalchemy_reads_it_and_the_turn_holds_the_write_lock(
    sqlite_url: str, small_flows: FlowSet, vault: Vault, clock: Clock
) -> None:
    engine = create_engine(sqlite_url)
    hamroh = Hamroh(engine=engine, flows=small_flows, vault=vault, clock=clock, new_token=Tokens())
    try:
        await hamroh.handle(Inbound("telegram", "5551234", "hi", provider_id="u1", message_id=7))
        fingerprint = vault.fingerprint(normalise_address("telegram", "5551234"))
        async with turns.turn_transaction(engine) as db:
            her, _ = await turns.her_contact_and_session(db, fingerprint)
            assert her is not None
            assert (her.subscribed, her.opted_out, her.may_have_case) == (False, False, False)
            assert all(type(flag) is bool for flag in (her.subscribed, her.opted_out, her.may_have_case))
            other = sqlite3.connect(make_url(sqlite_url).database or "", timeout=0)
            try:
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
            finally:
                other.close()
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_on_postgresql_her_session_log_and_message_id_go_with_the_replies_in_one_statement(
    postgres_url: str, small_flows: FlowSet, vault: Vault, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After her contact's SELECT, one statement writes her session, the request log, her message id, the
    replies and the delivery's record (which must be new) together, as CTEs."""
    sent: list[tuple[int, int]] = []  # per asyncpg statement: the writes riding along, the checked ones
    real = turns.fetch_together

    async def counted(driver: object, riding: list[object], main: object, checked: list[object]) -> object:
        sent.append((len(riding), len(checked)))
        return await real(driver, riding, main, checked)  # type: ignore[arg-type]

    monkeypatch.setattr(turns, "fetch_together", counted)
    engine = create_engine(postgres_url)
    hamroh = Hamroh(engine=engine, flows=small_flows, vault=vault, clock=clock, new_token=Tokens())
    try:
        await hamroh.handle(Inbound("telegram", "5551234", "hi", provider_id="u1", message_id=7))
        sent.clear()
        outcome = await hamroh.handle(Inbound("telegram", "5551234", "1", provider_id="u2", message_id=8))
        assert outcome.outbox_ids
        ((riding, checked),) = sent  # one statement after her contact's SELECT
        assert riding >= 2  # her session and her message id at least (and the request log)
        assert checked == 1  # the delivery
        async with transaction(engine) as db:
            assert await count_rows(db, ChatMessage) == 2
            (state,) = (await db.exec(select(ConversationState))).all()
            assert state.updated_at == clock()
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_a_waiting_write_sqlalchemy_must_run_still_lands_and_a_redelivery_still_rolls_back(
    postgres_url: str, clock: Clock
) -> None:
    """A write not compiled for asyncpg (a statement made per call) goes through SQLAlchemy, after the
    delivery's check: the check still rolls the turn back, and otherwise both land."""
    engine = create_engine(postgres_url)
    made_per_call = sa.insert(RequestLogEntry.__table__)  # type: ignore[attr-defined]
    now = clock()
    row = {"hour": now, "topic": "t", "channel": "sms", "lang": "tg", "district": None, "pseudonym": "p"}

    async def turn(provider_id: str) -> None:
        async with turns.turn_transaction(engine) as db:
            await turns.her_contact_and_session(db, "nobody")  # begins the transaction
            await turns.record_delivery(db, channel="sms", provider_id=provider_id, contact_id=None, now=now)
            db.later(made_per_call, [row])

    try:
        await turn("m1")
        with pytest.raises(Redelivered):
            await turn("m1")
        async with transaction(engine) as db:
            assert await count_rows(db, Delivery) == 1
            assert await count_rows(db, RequestLogEntry) == 1  # the redelivery's row was rolled back
    finally:
        await engine.dispose()


async def test_on_sqlite_a_plain_turn_crosses_to_aiosqlites_thread_once_for_its_commit(
    sqlite_url: str, small_flows: FlowSet, vault: Vault, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each crossing costs a turn more than its statements: BEGIN IMMEDIATE is taken on the event loop's
    thread when nobody else writes, and the pool does not roll back what has committed."""
    engine = create_engine(sqlite_url)
    hamroh = Hamroh(engine=engine, flows=small_flows, vault=vault, clock=clock, new_token=Tokens())
    crossings: list[str] = []
    execute = aiosqlite.Connection._execute

    async def crossing(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        crossings.append(getattr(fn, "__name__", repr(fn)))
        return await execute(self, fn, *args, **kwargs)

    try:
        await hamroh.handle(Inbound("telegram", "5551234", "hi", provider_id="u1", message_id=7))
        monkeypatch.setattr(aiosqlite.Connection, "_execute", crossing)
        for n in range(2, 5):
            await hamroh.handle(Inbound("telegram", "5551234", "1", provider_id=f"u{n}", message_id=n))
        assert crossings == ["commit"] * 3
    finally:
        await engine.dispose()
