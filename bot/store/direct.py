"""Core statements made once, run by asyncpg on the connection SQLAlchemy opened, as SQL compiled once.

A webhook turn's statements are few and always the same, and SQLAlchemy's execution of each (compiled
cache look-up, execution context, result processing, the greenlet hop) cost more CPU than asyncpg's
round trip itself. Here a statement marked `direct` at import is compiled once per shape (the keys given,
the number of rows) for PostgreSQL, and each run only puts the parameters in order, converted as
SQLAlchemy would convert them (`bind_processor`), with the columns' constant defaults for columns not
given. Anything else (a default SQLAlchemy computes, a statement made per call) is left to SQLAlchemy.

Writes nothing reads back in the turn can ride along with the next INSERT as data-modifying CTEs of one
statement (`fetch_together`): PostgreSQL runs every part once, in the same snapshot, so they are only
combined where no part reads what another writes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

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


_compiled: dict[tuple[int, int, tuple[str, ...]], Compiled | None] = {}


def compiled_for(statement: Any, dialect: Any, params: Params) -> Compiled | None:
    """The statement compiled for asyncpg (cached by statement, row count and keys given), or None where
    SQLAlchemy must run it: a statement not marked `direct`, or one with a value SQLAlchemy would compute
    on the way (a default that is not a constant)."""
    many = 0 if isinstance(params, Mapping) else len(params)
    keys = tuple(params if isinstance(params, Mapping) else params[0])
    key = (id(statement), many, keys)
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
        found = Compiled(statement, compiled.string, names, convert, fixed, ordered, table is not None)
    _compiled[key] = found
    return found


async def fetch(driver: Any, compiled: Compiled, params: Params) -> Rows:
    """Run one compiled statement on asyncpg."""
    return await fetch_together(driver, [], (compiled, params))


_together: dict[tuple[int, ...], str] = {}


async def fetch_together(
    driver: Any, riding: Sequence[tuple[Compiled, Params]], main: tuple[Compiled, Params]
) -> Rows:
    """Run `main` with the `riding` writes as data-modifying CTEs of the same statement (one round trip);
    what `main` returns. The riding statements return nothing anyone reads."""
    last, params = main
    args = [arg for part, part_params in riding for arg in part.args(part_params)]
    args += last.args(params)
    sql = last.sql
    if riding:
        key = (*(id(part) for part, _ in riding), id(last))
        sql = _together.get(key) or _together.setdefault(key, _combined([part for part, _ in riding], last))
    try:
        records = await driver.fetch(sql, *args)
    except asyncpg.IntegrityConstraintViolationError as exc:  # as SQLAlchemy says it: the turn retries
        raise IntegrityError(sql, None, exc) from exc
    if last.ordered:
        records.sort(key=lambda record: record[0])  # ids are taken in the order the rows are given
    return Rows(records)


def _combined(riding: Sequence[Compiled], last: Compiled) -> str:
    """One statement: the riding writes as CTEs w0, w1, ..., then `last`; each part's numbered parameters
    moved past the parts before it."""
    parts: list[str] = []
    offset = 0
    for n, part in enumerate((*riding, last)):
        shifted = _shift(part.sql, offset)
        parts.append(shifted if part is last else f"w{n} AS ({shifted})")
        offset += len(part.names)
    *ctes, main = parts
    return f"WITH {', '.join(ctes)} {main}"


def _shift(sql: str, by: int) -> str:
    def moved(found: re.Match[str]) -> str:
        return f"${int(found.group(1)) + by}"

    return _PLACEHOLDER.sub(moved, sql)
