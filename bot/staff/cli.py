"""`hamroh staff ...`: accounts from the command line. Passwords are read, never taken as arguments.

Only the standard library is imported up front: the `hamroh` command builds this parser on every run.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from bot.config import Settings
from bot.staff.errors import StaffError
from bot.staff.passwords import MIN_LENGTH, check_strength

if TYPE_CHECKING:
    from datetime import datetime

    from sqlmodel.ext.asyncio.session import AsyncSession

T = TypeVar("T")
Work = Callable[["AsyncSession"], Awaitable[T]]


class InputError(Exception):
    """The password could not be read as the rules say."""


def register(commands: Any) -> None:
    """Add the `staff` command group to the subcommands of the `hamroh` parser."""
    staff = commands.add_parser("staff", help="staff accounts: add, list, password, disable, API tokens")
    staff_commands = staff.add_subparsers(required=True, metavar="COMMAND")
    reading = (
        f"The password (at least {MIN_LENGTH} characters) is asked twice on a terminal; otherwise it is "
        "read from standard input: one line, or the same line twice. It is never an argument."
    )

    add = staff_commands.add_parser("add", help="add an account", description=reading)
    add.add_argument("name")
    add.add_argument("--role", required=True, help="counsellor, supervisor, coordinator or admin")
    add.set_defaults(run=_add)

    listing = staff_commands.add_parser("list", help="every account: name, role, disabled, API token")
    listing.set_defaults(run=_list)

    password = staff_commands.add_parser(
        "password", help="set an account's password (ends its logins)", description=reading
    )
    password.add_argument("name")
    password.set_defaults(run=_password)

    disable = staff_commands.add_parser("disable", help="disable an account, its logins and its API token")
    disable.add_argument("name")
    disable.set_defaults(run=_disable)

    token = staff_commands.add_parser(
        "token", help="issue an API token (printed once, on the last line); an earlier one stops working"
    )
    token.add_argument("name")
    token.add_argument("--revoke", action="store_true", help="end the account's API token instead")
    token.set_defaults(run=_token)


def read_password(stdin: TextIO, *, ask: Callable[[str], str] = getpass.getpass) -> str:
    """The new password: asked twice on a terminal, else one line (or the same line twice) of stdin."""
    if stdin.isatty():
        first, second = ask("New password: "), ask("The same password again: ")
    else:
        lines = stdin.read().splitlines()
        if not lines or len(lines) > 2:
            raise InputError("give the password on standard input: one line, or the same line twice")
        first, second = lines[0], lines[-1]
    if first != second:
        raise InputError("the two passwords differ")
    check_strength(first)
    return first


def _add(settings: Settings, args: argparse.Namespace) -> int:
    from bot.staff import accounts, audit

    try:
        accounts.check_role(args.role)  # before asking for a password that would be thrown away
    except StaffError as exc:
        print(f"hamroh: {exc}", file=sys.stderr)
        return 1

    def work(password: str) -> Work[str]:
        async def run(db: AsyncSession) -> str:
            now = _now()
            staff = await accounts.add_staff(db, name=args.name, role=args.role, password=password, now=now)
            detail = f"{staff.name} ({staff.role})"
            await audit.record(db, staff=None, action="staff_added", detail=detail, now=now)
            return f"added {detail}"

        return run

    return _with_password(settings, work)


def _password(settings: Settings, args: argparse.Namespace) -> int:
    from bot.staff import accounts, audit

    def work(password: str) -> Work[str]:
        async def run(db: AsyncSession) -> str:
            staff = await accounts.set_password(db, name=args.name, password=password)
            await audit.record(db, staff=None, action="password_set", detail=staff.name, now=_now())
            return f"password set for {staff.name}; their logins have ended"

        return run

    return _with_password(settings, work)


def _list(settings: Settings, args: argparse.Namespace) -> int:
    from bot.staff import accounts

    async def run(db: AsyncSession) -> str:
        rows = await accounts.list_staff(db)
        if not rows:
            return "no staff accounts yet: add one with `hamroh staff add NAME --role ROLE`"
        width = max(len(s.name) for s in rows)
        lines = [f"{'NAME':<{width}}  {'ROLE':<11}  {'DISABLED':<8}  API TOKEN"]
        lines += [
            f"{s.name:<{width}}  {s.role:<11}  {_yes(s.disabled):<8}  {_yes(s.token_hash is not None)}"
            for s in rows
        ]
        return "\n".join(lines)

    return _say(_in_database(settings, run))


def _disable(settings: Settings, args: argparse.Namespace) -> int:
    from bot.staff import accounts, audit

    async def run(db: AsyncSession) -> str:
        staff = await accounts.disable_staff(db, name=args.name)
        await audit.record(db, staff=None, action="staff_disabled", detail=staff.name, now=_now())
        return f"disabled {staff.name}: their logins and API token have ended"

    return _say(_in_database(settings, run))


def _token(settings: Settings, args: argparse.Namespace) -> int:
    from bot.staff import accounts, audit

    async def revoke(db: AsyncSession) -> str:
        name = (await accounts.get_staff(db, name=args.name)).name
        if not await accounts.revoke_token(db, name=name):
            return f"{name} had no API token"
        await audit.record(db, staff=None, action="token_revoked", detail=name, now=_now())
        return f"API token of {name} revoked"

    async def issue(db: AsyncSession) -> str:
        now = _now()
        token = await accounts.issue_token(db, name=args.name, now=now)
        name = accounts.normalise_name(args.name)
        await audit.record(db, staff=None, action="token_issued", detail=name, now=now)
        # The token alone on the last line, so that a script can take it with `tail -n 1`.
        return f"API token of {name} (shown only now; an earlier token no longer works):\n{token}"

    return _say(_in_database(settings, revoke if args.revoke else issue))


def _with_password(settings: Settings, work: Callable[[str], Work[str]]) -> int:
    try:
        password = read_password(sys.stdin)
    except (InputError, StaffError) as exc:
        print(f"hamroh: {exc}", file=sys.stderr)
        return 1
    except EOFError:  # Ctrl-D at the prompt
        print("hamroh: no password given", file=sys.stderr)
        return 1
    return _say(_in_database(settings, work(password)))


def _in_database(settings: Settings, work: Work[T]) -> T | None:
    """Run `work` as one unit of work on the configured database; None, said on stderr, if it failed."""
    from bot.store.db import create_engine, transaction
    from bot.store.migrate import behind

    # Alembic says how it inspected the database at INFO; here that is only noise around the answer.
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    if asyncio.run(behind(settings.database_url)):
        print("hamroh: the database is not up to date: run `hamroh db upgrade` first", file=sys.stderr)
        return None

    async def run() -> T:
        engine = create_engine(settings.database_url)
        try:
            async with transaction(engine) as db:
                return await work(db)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except StaffError as exc:
        print(f"hamroh: {exc}", file=sys.stderr)
        return None


def _say(message: str | None) -> int:
    if message is None:
        return 1
    print(message)
    return 0


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _now() -> datetime:
    from datetime import UTC, datetime

    return datetime.now(UTC)  # the real clock enters here, at the edge; the functions below take it
