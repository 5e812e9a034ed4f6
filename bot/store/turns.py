"""A turn's transaction and the statements every turn runs, as SQLAlchemy Core over the SQLModel tables.

A turn runs on every message she sends, so its common path is kept to the fewest round trips and no ORM
work: her contact and her session in one SELECT (her contact locked), the delivery recorded with
INSERT ... ON CONFLICT DO NOTHING (the duplicate check and the record in one statement), her session
written with one upsert, what changed of her contact in one UPDATE, the outbox rows in one multi-row
insert. The steps only some turns take (a case, a course, news, erasure) use an ORM session, made when the
first of them asks for one and joined to the turn's connection and transaction. PostgreSQL and SQLite both
speak these statements.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.store.db import OUTBOX_TOUCHED, committed, one_writer
from bot.store.direct import (
    Asyncpg,
    Compiled,
    Driver,
    InlineSqlite,
    Params,
    Part,
    Redelivered,
    compiled_for,
    direct,
    fetch,
    fetch_together,
)
from bot.store.tables import Contact, ConversationState, Delivery, OutboxMessage

_CONTACTS = Contact.__table__  # type: ignore[attr-defined]
_DELIVERIES = Delivery.__table__  # type: ignore[attr-defined]
_SESSIONS = ConversationState.__table__  # type: ignore[attr-defined]
_OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]
# One INSERT of every row, their ids returned in the order given (the order they will leave in).
_OUTBOX_INSERT = direct(sa.insert(_OUTBOX).returning(_OUTBOX.c.id, sort_by_parameter_order=True))
_NEW_CONTACT = direct(sa.insert(_CONTACTS).returning(_CONTACTS.c.id))
_CONTACT_DEFAULTS = {  # the model's: a constant, or none (NULL)
    column.name: column.default.arg if column.default is not None and column.default.is_scalar else None
    for column in _CONTACTS.columns
    if column.name != "id"
}

# What a turn reads of her contact, and may change.
SETTLED = ("lang", "district", "script", "subscribed", "opted_out")
_READ = ("id", *SETTLED, "address", "safe_hours", "may_have_case", "pseudonym", "pseudonym_month")

# FOR UPDATE OF her contact only: two messages of hers at once take turns, so neither overwrites the other's
# session (her session row may not exist yet, and the outer join's empty side cannot be locked).
_HER = direct(
    sa.select(*(_CONTACTS.c[name] for name in _READ), _SESSIONS.c.state)
    .select_from(_CONTACTS.outerjoin(_SESSIONS, _SESSIONS.c.contact_id == _CONTACTS.c.id))
    .where(_CONTACTS.c.fingerprint == sa.bindparam("fingerprint"))
    .with_for_update(of=_CONTACTS)
)


def _delivery(module: Any) -> Any:
    return (
        module.insert(_DELIVERIES)
        .on_conflict_do_nothing(index_elements=["channel", "provider_id"])
        .returning(_DELIVERIES.c.id)
    )


def _session_upsert(module: Any) -> Any:
    statement = module.insert(_SESSIONS)
    return statement.on_conflict_do_update(
        index_elements=["contact_id"],
        set_={"state": statement.excluded.state, "updated_at": statement.excluded.updated_at},
    )


_STATEMENTS = {
    name: {"delivery": direct(_delivery(module)), "session": direct(_session_upsert(module))}
    for name, module in (("postgresql", postgresql), ("sqlite", sqlite))
}


@dataclass
class Her:
    """Her contact as a turn reads it, and what the turn changed of it (written once, at `save_contact`)."""

    id: int
    address: bytes
    lang: str | None
    district: str | None
    script: str
    subscribed: bool
    opted_out: bool
    safe_hours: str | None
    may_have_case: bool
    pseudonym: str
    pseudonym_month: str
    changes: dict[str, Any] = field(default_factory=dict)

    def change(self, name: str, value: Any) -> None:
        """Set one of her columns; only a value that differs is written."""
        if getattr(self, name) != value:
            setattr(self, name, value)
            self.changes[name] = value


class TurnDb:
    """One turn's connection, inside its transaction: Core statements on it, and an ORM session on the
    same transaction for the steps that need one (made on first use: most turns never do).

    The turn's statements go to the driver on the same connection and transaction (bot.store.direct:
    asyncpg, or sqlite3 itself; see `begin`). Writes nothing in the turn reads back (`later`: her session,
    the request log, her message id) wait for the turn's next statement and, on PostgreSQL where that is
    an INSERT, go with it as one statement: a round trip costs a turn more CPU than the statement does.
    """

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection
        self._session: AsyncSession | None = None
        self._driver: Driver | None = None  # the driver's connection, once the transaction has begun
        self._later: list[tuple[Any, Params]] = []
        self._checked: list[Part] = []  # writes that must add a row, else Redelivered

    @property
    def dialect(self) -> str:
        return self.connection.dialect.name

    def later(self, statement: Any, params: Params) -> None:
        """A write nothing in the turn reads back: it goes with the turn's next statement, or at its end."""
        self._later.append((statement, params))

    def checks_later(self, statement: Any, params: Params) -> bool:
        """Whether an INSERT ... ON CONFLICT DO NOTHING RETURNING that must add a row can wait for the
        turn's next statement (the driver runs them): if so it waits, and Redelivered is raised then when it
        added none. Else the caller runs it now."""
        if self._driver is None:
            return False
        compiled = compiled_for(statement, self.connection.dialect, params)
        if compiled is None:
            return False
        self._checked.append((compiled, params))
        return True

    async def run(self, statement: Any, params: Params) -> Any:
        """Execute a Core statement with its parameters (a list of them: one statement of many rows), after
        the writes waiting for it (with it, where it is an INSERT that the driver runs)."""
        if self._driver is not None:
            main = compiled_for(statement, self.connection.dialect, params)
            if main is not None:
                riding = self._direct_all(self._later) if main.insert else None
                if riding is not None:
                    checked, self._later, self._checked = self._checked, [], []
                    return await fetch_together(self._driver, riding, (main, params), checked)
                await self.write_out()
                return await fetch(self._driver, main, params)
        await self.write_out()
        result = await self.connection.execute(statement, params)
        if self._driver is None and self.dialect == "postgresql":  # the transaction has begun: go direct
            self._driver = Asyncpg((await self.connection.get_raw_connection()).driver_connection)
        return result

    async def begin(self) -> None:
        """Hand the turn's statements to the driver from the first one, inside the transaction.

        SQLite: the transaction has begun with the connection (BEGIN IMMEDIATE), and sqlite3 runs them.
        PostgreSQL: BEGIN is sent as SQLAlchemy's asyncpg adapter sends it before its first statement, and
        asyncpg runs them; SQLAlchemy commits or rolls back as usual. If BEGIN fails, SQLAlchemy begins
        instead and fails as it would have, so a connection the server dropped is invalidated with every
        older one in the pool (asyncpg's own error would not tell SQLAlchemy). A SQLAlchemy without that
        adapter method leaves the first statement to SQLAlchemy (see `run`).
        """
        raw = await self.connection.get_raw_connection()
        if self.dialect == "sqlite":
            aiosqlite_connection: Any = raw.driver_connection
            self._driver = InlineSqlite(aiosqlite_connection._conn)  # sqlite3's own, under aiosqlite
            return
        start = getattr(raw.dbapi_connection, "_start_transaction", None)
        if self.dialect != "postgresql" or start is None:
            return
        try:
            await start()
        except Exception:
            await self.connection.exec_driver_sql("SELECT 1")  # raises as SQLAlchemy raises it
        self._driver = Asyncpg(raw.driver_connection)

    def _direct_all(self, writes: list[tuple[Any, Params]]) -> list[tuple[Compiled, Params]] | None:
        """The writes as the driver runs them, or None if one of them cannot be."""
        found = []
        for statement, params in writes:
            compiled = compiled_for(statement, self.connection.dialect, params)
            if compiled is None:
                return None
            found.append((compiled, params))
        return found

    async def write_out(self) -> None:
        """Run the waiting writes now (on PostgreSQL as one statement where asyncpg runs them all)."""
        waiting, self._later = self._later, []
        checked, self._checked = self._checked, []
        if not waiting and not checked:
            return
        driver = self._driver
        riding = self._direct_all(waiting) if driver is not None else None
        if driver is not None and riding is not None:
            await fetch_together(driver, riding, None, checked)
            return
        if driver is not None and checked:  # SQLAlchemy runs the waiting writes: the checks go first, alone
            await fetch_together(driver, [], None, checked)
        for statement, params in waiting:
            await self.connection.execute(statement, params)

    def wrote_outbox(self) -> None:
        """Say the transaction wrote outbox rows where SQLAlchemy's engine events cannot see it (sqlite3
        ran the statement), as they say it for a statement they see: on SQLite its commit wakes this
        process's dispatcher (bot.outbound.wakeup)."""
        if isinstance(self._driver, InlineSqlite):
            self.connection.info[OUTBOX_TOUCHED] = True

    async def session(self) -> AsyncSession:
        """An ORM session on the turn's transaction: its writes commit or roll back with the turn's (the
        waiting writes are written first, so what it reads is whole)."""
        await self.write_out()
        if self._session is None:
            self._session = AsyncSession(
                bind=self.connection, expire_on_commit=False, join_transaction_mode="rollback_only"
            )
        return self._session

    async def contact(self, her: Her) -> Contact:
        """Her contact as an ORM object, for the steps that change it (with what `save_contact` wrote)."""
        session = await self.session()
        contact = await session.get(Contact, her.id)
        assert contact is not None  # locked by this turn since it was read
        return contact

    async def flush(self) -> None:
        """Write what the ORM session holds (before a statement that must come after it, and at the end)."""
        if self._session is not None:
            await self._session.flush()

    async def finish(self) -> None:
        """Write everything still waiting: the ORM session's objects, then the waiting writes."""
        await self.flush()
        await self.write_out()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


@asynccontextmanager
async def turn_transaction(engine: AsyncEngine) -> AsyncIterator[TurnDb]:
    """One turn: committed when the block ends, rolled back entirely if it raises."""
    async with one_writer(engine), engine.connect() as connection:
        async with connection.begin():
            db = TurnDb(connection)
            await db.begin()
            try:
                yield db
                await db.finish()
            finally:
                await db.close()
        committed(connection)


async def her_contact_and_session(db: TurnDb, fingerprint: str) -> tuple[Her | None, str | None]:
    """Her contact, locked for the turn, and her stored session (JSON text), or None for either."""
    found = (await db.run(_HER, {"fingerprint": fingerprint})).first()
    if found is None:
        return None, None
    *columns, state = found
    return Her(**dict(zip(_READ, columns, strict=True))), state


async def new_contact(db: TurnDb, values: Mapping[str, Any]) -> Her:
    """Her contact, made on her first message: `values`, and the model's defaults for the rest."""
    row = {**_CONTACT_DEFAULTS, **values}
    made = (await db.run(_NEW_CONTACT, row)).scalar_one()
    return Her(id=made, **{name: row[name] for name in _READ if name != "id"})


def save_contact(db: TurnDb, her: Her) -> None:
    """Write what the turn changed of her contact, in one UPDATE with the turn's next write (nothing when
    nothing changed; an ORM session asked for later finds it written)."""
    if her.changes:
        values = {f"new_{name}": value for name, value in her.changes.items()}
        db.later(_contact_update(frozenset(her.changes)), {"contact_id": her.id, **values})
        her.changes = {}


@cache
def _contact_update(names: frozenset[str]) -> Any:
    """The UPDATE of these columns of her contact (one per set of columns: a turn changes few)."""
    where = _CONTACTS.c.id == sa.bindparam("contact_id")
    return direct(sa.update(_CONTACTS).where(where).values({n: sa.bindparam(f"new_{n}") for n in names}))


async def record_delivery(
    db: TurnDb, *, channel: str, provider_id: str, contact_id: int | None, now: datetime
) -> None:
    """Record a message as handled; Redelivered if it was already (the turn rolls back and does nothing).

    On PostgreSQL the record goes with the turn's last statement (one round trip fewer), so a redelivery is
    found then, and rolled back whole; elsewhere at once. A redelivery racing the first delivery waits
    for her lock (or the other transaction's row) and then finds it.
    """
    values = {"channel": channel, "provider_id": provider_id, "contact_id": contact_id, "received_at": now}
    statement = _STATEMENTS[db.dialect]["delivery"]
    if not db.checks_later(statement, values) and (await db.run(statement, values)).first() is None:
        raise Redelivered


def save_session(db: TurnDb, *, contact_id: int, state: str, now: datetime) -> None:
    """Write her session (one row per contact), whether or not she had one, with the turn's next write."""
    values = {"contact_id": contact_id, "state": state, "updated_at": now}
    db.later(_STATEMENTS[db.dialect]["session"], values)


async def add_outbox(db: TurnDb, rows: Sequence[Mapping[str, Any]]) -> tuple[int, ...]:
    """Insert outbox rows (made by `bot.outbox.values`) in one statement; their ids, in the order given."""
    if not rows:
        return ()
    await db.flush()  # rows the ORM session holds were made first: they leave first
    inserted = await db.run(_OUTBOX_INSERT, rows)  # every row has the same keys (the rest: their defaults)
    db.wrote_outbox()
    return tuple(inserted.scalars())
