"""Core statements made once, run by the driver under the connection SQLAlchemy opened, as SQL compiled once.

A webhook turn's statements are few and always the same, and SQLAlchemy's execution of each (compiled
cache look-up, execution context, result processing, the greenlet hop) cost more CPU than the statement
itself. Here a statement marked `direct` at import is compiled once per dialect and shape (the keys given,
the number of rows), and each run only puts the parameters in order, converted as SQLAlchemy would
convert them (`bind_processor`), with the columns' constant defaults for columns not given. Anything else
(a default SQLAlchemy computes, a statement made per call) is left to SQLAlchemy.

On PostgreSQL asyncpg runs them (`Asyncpg`), and writes nothing reads back in the turn ride along with the
next INSERT as data-modifying CTEs of one statement: PostgreSQL runs every part once, in the same
snapshot, so they are only combined where no part reads what another writes. On SQLite Python's sqlite3
runs them on the event loop's thread (`InlineSqlite`), one by one: each would otherwise cross to
aiosqlite's thread and back several times, which costs far more than the statement.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

T = TypeVar("T")
Params = Mapping[str, Any] | Sequence[Mapping[str, Any]]
_PLACEHOLDER = re.compile(r"\$(\d+)")  # asyncpg's numbered parameters, as SQLAlchemy writes them

_made_once: dict[int, Any] = {}


def direct(statement: T) -> T:
    """Mark a statement made once (at import) as one a turn may run on asyncpg directly."""
    _made_once[id(statement)] = statement
    return statement


class Rows:
    """What a statement returned, read as a turn reads SQLAlchemy's results."""

    def __init__(self, records: list[Any]) -> None:
        self._records = records

    def first(self) -> Any:
        return self._records[0] if self._records else None

    def scalar_one(self) -> Any:
        (record,) = self._records
        return record[0]

    def scalars(self) -> list[Any]:
        return [record[0] for record in self._records]


@dataclass(frozen=True)
class Compiled:
    """A statement's SQL for asyncpg, and how its parameters are put in order."""

    statement: Any  # kept, so the id it is cached under is never another statement's
    sql: str
    names: tuple[str, ...]
    convert: tuple[Callable[[Any], Any] | None, ...]
    fixed: Mapping[str, Any]  # the columns' defaults, for the columns not given
    ordered: bool  # many rows RETURNING: put them back in the order given (by their id)
    insert: bool  # reads nothing: others' writes may ride along with it
    results: tuple[Callable[[Any], Any] | None, ...]  # SQLAlchemy's conversion of each column returned

    @property
    def returns(self) -> bool:
        """Whether it returns rows (a SELECT, or RETURNING)."""
        return bool(self.results)

    def args(self, params: Params) -> list[Any]:
        given: Mapping[str, Any]
        if isinstance(params, Mapping):
            given = params
        else:
            given = {f"r{n}_{key}": value for n, row in enumerate(params) for key, value in row.items()}
        fixed = self.fixed
        return [
            (value if convert is None else convert(value))
            for name, convert in zip(self.names, self.convert, strict=True)
            for value in (given[name] if name in given else fixed[name],)
        ]


_compiled: dict[tuple[str, int, int, tuple[str, ...]], Compiled | None] = {}


def compiled_for(statement: Any, dialect: Any, params: Params) -> Compiled | None:
    """The statement compiled for the dialect's driver (cached by dialect, statement, row count and keys
    given), or None where SQLAlchemy must run it: a statement not marked `direct`, or one with a value
    SQLAlchemy would compute on the way (a default that is not a constant)."""
    many = 0 if isinstance(params, Mapping) else len(params)
    keys = tuple(params if isinstance(params, Mapping) else params[0])
    key = (dialect.name, id(statement), many, keys)
    if key in _compiled:
        return _compiled[key]
    if id(statement) not in _made_once:
        return None
    table = statement.table if isinstance(statement, sa.Insert) else None
    defaults = {}  # an INSERT's columns not given: their constant defaults, given by us
    if table is not None:
        defaults = {
            column.name: column.default.arg  # type: ignore[attr-defined]
            for column in table.columns
            if column.name not in keys and column.default is not None and column.default.is_scalar
        }
    named = (*keys, *defaults)
    returns = [column["expr"] for column in getattr(statement, "returning_column_descriptions", ())]
    if many:
        assert table is not None  # a list of rows is for one INSERT of them all
        rows = [{k: sa.bindparam(f"r{n}_{k}", type_=table.c[k].type) for k in named} for n in range(many)]
        compiled = sa.insert(table).values(rows).returning(*returns).compile(dialect=dialect)
        fixed = {f"r{n}_{k}": value for n in range(many) for k, value in defaults.items()}
    else:
        compiled = statement.compile(dialect=dialect, column_keys=list(named))
        fixed = defaults
    names = tuple(compiled.positiontup or ())
    given = {f"r{n}_{k}" for n in range(many) for k in keys} if many else set(keys)
    found = None
    if all(name in given or name in fixed for name in names):  # else a value SQLAlchemy would compute
        convert = tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
        )
        ordered = many > 1 and bool(returns)
        results = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in compiled._result_columns  # what SQLAlchemy reads results by
        )
        found = Compiled(
            statement,
            compiled.string,
            names,
            convert,
            fixed,
            ordered,
            table is not None,
            results,
        )
    _compiled[key] = found
    return found


class Redelivered(Exception):
    """A write expected to add a row added none: her message was handled before (its delivery is there)."""


Part = tuple[Compiled, Params]


class Asyncpg:
    """asyncpg's connection, inside the transaction SQLAlchemy began on it."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    async def together(self, riding: Sequence[Part], main: Part | None, checked: Sequence[Part]) -> Rows:
        parts = [*riding, *checked, *([main] if main is not None else [])]
        args = [arg for part, params in parts for arg in part.args(params)]
        key = (*(id(part) for part, _ in parts), len(checked), main is not None)
        sql = _together.get(key)
        if sql is None:
            statements = [part for part, _ in parts]
            sql = _together.setdefault(key, _combined(statements, len(checked), main is not None))
        try:
            records = await self.connection.fetch(sql, *args)
        except asyncpg.IntegrityConstraintViolationError as exc:  # as SQLAlchemy says it: the turn retries
            raise IntegrityError(sql, None, exc) from exc
        if checked:  # one row: how many rows each checked write added, then what `main` returned
            (record,) = records
            added, returned = record[: len(checked)], record[len(checked)]
            if not all(added):
                raise Redelivered
            records = [(value,) for value in returned or ()]
        elif main is None or not main[0].returns:
            records = []
        if main is not None and main[0].ordered:
            records.sort(key=lambda record: record[0])  # ids are taken in the order the rows are given
        return Rows(list(records))


class InlineSqlite:
    """Python's sqlite3 connection under aiosqlite's, inside the transaction SQLAlchemy began on it (BEGIN
    IMMEDIATE: the database's write lock is held, so no statement here waits for another writer).

    Statements run on the event loop's thread: a turn's few statements touch pages SQLite has in memory
    and take microseconds, where each crossing to aiosqlite's thread costs a wake-up both ways. COMMIT,
    which syncs to disk, still goes through SQLAlchemy on aiosqlite's thread.
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    async def together(self, riding: Sequence[Part], main: Part | None, checked: Sequence[Part]) -> Rows:
        part: Part | None = None
        try:
            for part in riding:
                self._run(*part)
            for part in checked:
                if not self._run(*part):
                    raise Redelivered
            part = main
            records = self._run(*main) if main is not None else []
        except sqlite3.Error as exc:  # as SQLAlchemy says it (an IntegrityError: the turn retries)
            sql = part[0].sql if part is not None else ""
            raise DBAPIError.instance(sql, None, exc, sqlite3.Error) from exc
        if main is not None and main[0].ordered:
            records.sort(key=lambda record: record[0])
        return Rows(records)

    def _run(self, compiled: Compiled, params: Params) -> list[Any]:
        cursor = self.connection.execute(compiled.sql, compiled.args(params))
        if not compiled.returns:
            return []
        convert = compiled.results
        if not any(convert):
            return cursor.fetchall()
        return [
            tuple(value if fn is None else fn(value) for fn, value in zip(convert, row, strict=True))
            for row in cursor.fetchall()
        ]


Driver = Asyncpg | InlineSqlite


async def fetch(driver: Driver, compiled: Compiled, params: Params) -> Rows:
    """Run one compiled statement."""
    return await fetch_together(driver, [], (compiled, params))


_together: dict[tuple[int, ...], str] = {}


async def fetch_together(
    driver: Driver, riding: Sequence[Part], main: Part | None, checked: Sequence[Part] = ()
) -> Rows:
    """Run `main` after the `riding` and `checked` writes (on PostgreSQL as data-modifying CTEs of one
    statement: one round trip); what `main` returns. Riding writes return nothing anyone reads; a checked
    write must add a row (an INSERT ... ON CONFLICT DO NOTHING RETURNING), else Redelivered (the caller
    rolls back)."""
    return await driver.together(riding, main, checked)


def _combined(parts: Sequence[Compiled], checked: int, has_main: bool) -> str:
    """One statement of `parts` (each part's numbered parameters moved past the parts before it).

    Without checked parts: every part but the last as CTEs w0, w1, ..., then the last. With them: every
    part a CTE, then one row: how many rows each checked part added, and what the last returned (an
    array of its one column; NULL without a main part)."""
    shifted: list[str] = []
    offset = 0
    for part in parts:
        shifted.append(_shift(part.sql, offset))
        offset += len(part.names)
    if not checked:
        *ctes, last = shifted
        if not ctes:
            return last
        return "WITH " + ", ".join(f"w{n} AS ({sql})" for n, sql in enumerate(ctes)) + f" {last}"
    every = ", ".join(f"w{n} AS ({sql})" for n, sql in enumerate(shifted))
    first_checked = len(parts) - checked - (1 if has_main else 0)
    # Only CTE names of ours and numbers go into these: nothing from outside.
    counts = [f"(SELECT count(*) FROM w{first_checked + n})" for n in range(checked)]  # noqa: S608
    returned = "NULL::int[]"
    if has_main and parts[-1].returns:
        returned = f"ARRAY(SELECT * FROM w{len(parts) - 1})"  # noqa: S608
    return f"WITH {every} SELECT {', '.join([*counts, returned])}"


def _shift(sql: str, by: int) -> str:
    def moved(found: re.Match[str]) -> str:
        return f"${int(found.group(1)) + by}"

    return _PLACEHOLDER.sub(moved, sql)
