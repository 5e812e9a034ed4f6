"""Staff accounts without the web: passwords, API tokens, sessions, throttling, the audit log, the CLI."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot import cli
from bot.staff import accounts, audit, sessions, throttle
from bot.staff.cli import InputError, read_password
from bot.staff.errors import AccountDisabled, BadName, BadRole, NameTaken, UnknownStaff, WeakPassword
from bot.staff.login import LoggedIn, Refused, Throttled, log_in
from bot.staff.passwords import hash_password, hasher, verify_password
from bot.store import AuditEntry, LoginThrottle, Staff, StaffSession
from bot.store.db import create_engine, transaction
from tests.conftest import TEST_HASH_KEY, Clock, run_hamroh

PASSWORD = "correct horse battery"
OTHER_PASSWORD = "another long password"


def keyed(value: str) -> str:
    """A stand-in for the vault's keyed hash."""
    return hashlib.sha256(f"{TEST_HASH_KEY}:{value}".encode()).hexdigest()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def add(engine: AsyncEngine, clock: Clock, name: str = "dilnoza", role: str = "counsellor") -> Staff:
    async with transaction(engine) as db:
        return await accounts.add_staff(db, name=name, role=role, password=PASSWORD, now=clock())


async def stored(engine: AsyncEngine, name: str = "dilnoza") -> Staff:
    async with transaction(engine) as db:
        return await accounts.get_staff(db, name=name)


async def attempt(
    engine: AsyncEngine,
    clock: Clock,
    *,
    name: str = "dilnoza",
    password: str = PASSWORD,
    address: str = "10.0.0.1",
) -> LoggedIn | Refused | Throttled:
    async with transaction(engine) as db:
        return await log_in(db, name=name, password=password, address=address, keyed_hash=keyed, now=clock())


# Passwords


async def test_a_password_is_stored_as_an_argon2id_hash_only() -> None:
    stored_hash = await hash_password(PASSWORD)
    assert stored_hash.startswith("$argon2id$")
    assert PASSWORD not in stored_hash
    assert await verify_password(stored_hash, PASSWORD) == (True, False)
    assert await verify_password(stored_hash, OTHER_PASSWORD) == (False, False)
    assert await verify_password("not a hash", PASSWORD) == (False, False)


async def test_a_password_needs_twelve_characters() -> None:
    with pytest.raises(WeakPassword, match="at least 12"):
        await hash_password("x" * 11)
    assert await hash_password("x" * 12)


async def test_a_hash_made_with_older_parameters_is_made_again_at_login(
    engine: AsyncEngine, clock: Clock
) -> None:
    await add(engine, clock)
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    async with transaction(engine) as db:
        staff = await accounts.get_staff(db, name="dilnoza")
        staff.password_hash = weak
        db.add(staff)
    assert isinstance(await attempt(engine, clock), LoggedIn)
    renewed = (await stored(engine)).password_hash
    assert renewed != weak
    assert not hasher().check_needs_rehash(renewed)
    assert isinstance(await attempt(engine, clock), LoggedIn)


# Accounts


async def test_accounts_are_added_listed_and_named_once(engine: AsyncEngine, clock: Clock) -> None:
    await add(engine, clock, "Zarina", "coordinator")
    await add(engine, clock, " dilnoza ")  # names are kept without surrounding spaces
    with pytest.raises(NameTaken):
        await add(engine, clock, "dilnoza", "admin")
    with pytest.raises(BadRole, match="counsellor, supervisor, coordinator, admin"):
        await add(engine, clock, "rustam", "boss")
    with pytest.raises(BadName):
        await add(engine, clock, "   ")
    async with transaction(engine) as db:
        listed = [(s.name, s.role, s.disabled) for s in await accounts.list_staff(db)]
        with pytest.raises(WeakPassword):
            await accounts.add_staff(db, name="rustam", role="admin", password="short", now=clock())
    assert listed == [("Zarina", "coordinator", False), ("dilnoza", "counsellor", False)]


async def test_authenticate_needs_the_right_name_and_password_of_an_enabled_account(
    engine: AsyncEngine, clock: Clock
) -> None:
    await add(engine, clock)
    async with transaction(engine) as db:
        assert (await accounts.authenticate(db, name="dilnoza", password=PASSWORD)) is not None
        assert await accounts.authenticate(db, name="dilnoza", password=OTHER_PASSWORD) is None
        assert await accounts.authenticate(db, name="nobody", password=PASSWORD) is None
        await accounts.disable_staff(db, name="dilnoza")
        assert await accounts.authenticate(db, name="dilnoza", password=PASSWORD) is None


async def test_a_new_password_replaces_the_old_one(engine: AsyncEngine, clock: Clock) -> None:
    await add(engine, clock)
    async with transaction(engine) as db:
        await accounts.set_password(db, name="dilnoza", password=OTHER_PASSWORD)
        assert await accounts.authenticate(db, name="dilnoza", password=PASSWORD) is None
        assert await accounts.authenticate(db, name="dilnoza", password=OTHER_PASSWORD) is not None
        with pytest.raises(UnknownStaff):
            await accounts.set_password(db, name="nobody", password=OTHER_PASSWORD)
        with pytest.raises(WeakPassword):
            await accounts.set_password(db, name="dilnoza", password="short")


# API tokens


async def test_an_api_token_is_stored_as_its_digest_and_replaced_by_the_next(
    engine: AsyncEngine, clock: Clock
) -> None:
    await add(engine, clock)
    async with transaction(engine) as db:
        first = await accounts.issue_token(db, name="dilnoza", now=clock())
    staff = await stored(engine)
    assert staff.token_hash == hashlib.sha256(first.encode()).hexdigest()
    assert first not in (staff.token_hash or "")
    assert staff.token_issued_at == clock()
    async with transaction(engine) as db:
        found = await accounts.by_token(db, token=first)
        assert found is not None
        assert found.name == "dilnoza"
        second = await accounts.issue_token(db, name="dilnoza", now=clock())
        assert second != first
        assert await accounts.by_token(db, token=first) is None
        assert await accounts.by_token(db, token=second) is not None
        assert await accounts.by_token(db, token="") is None


async def test_a_revoked_token_or_a_disabled_account_never_authenticates(
    engine: AsyncEngine, clock: Clock
) -> None:
    await add(engine, clock)
    await add(engine, clock, "rustam", "admin")
    async with transaction(engine) as db:
        token = await accounts.issue_token(db, name="dilnoza", now=clock())
        assert await accounts.revoke_token(db, name="dilnoza") is True
        assert await accounts.revoke_token(db, name="dilnoza") is False
        assert await accounts.by_token(db, token=token) is None

        other = await accounts.issue_token(db, name="rustam", now=clock())
        await accounts.disable_staff(db, name="rustam")
        assert await accounts.by_token(db, token=other) is None
        with pytest.raises(AccountDisabled):
            await accounts.issue_token(db, name="rustam", now=clock())
    assert (await stored(engine, "rustam")).token_hash is None


async def test_a_disabled_token_stays_dead_even_if_the_flag_is_all_that_changed(
    engine: AsyncEngine, clock: Clock
) -> None:
    await add(engine, clock)
    async with transaction(engine) as db:
        token = await accounts.issue_token(db, name="dilnoza", now=clock())
        staff = await accounts.get_staff(db, name="dilnoza")
        staff.disabled = True  # as if someone set the flag by hand, leaving the digest
        db.add(staff)
    async with transaction(engine) as db:
        assert await accounts.by_token(db, token=token) is None


# Login sessions


async def test_a_session_is_found_by_its_token_until_it_expires_or_ends(
    engine: AsyncEngine, clock: Clock
) -> None:
    staff = await add(engine, clock)
    async with transaction(engine) as db:
        new = await sessions.start_session(db, staff=staff, now=clock())
        kept = (await db.exec(select(StaffSession))).one()
    assert kept.token_hash == hashlib.sha256(new.token.encode()).hexdigest()
    assert new.token not in kept.token_hash
    assert new.expires_at == clock() + timedelta(hours=12)
    async with transaction(engine) as db:
        login = await sessions.find_session(db, token=new.token, now=clock())
        assert login is not None
        assert (login.staff.name, login.csrf) == ("dilnoza", new.csrf)
        assert await sessions.find_session(db, token="forged", now=clock()) is None
        assert await sessions.find_session(db, token=new.token, now=new.expires_at) is None
        await sessions.end_session(db, token=new.token)
        assert await sessions.find_session(db, token=new.token, now=clock()) is None


async def test_disabling_or_a_new_password_ends_every_session(engine: AsyncEngine, clock: Clock) -> None:
    staff = await add(engine, clock)
    async with transaction(engine) as db:
        first = await sessions.start_session(db, staff=staff, now=clock())
        await accounts.set_password(db, name="dilnoza", password=OTHER_PASSWORD)
        assert await sessions.find_session(db, token=first.token, now=clock()) is None
        second = await sessions.start_session(db, staff=staff, now=clock())
        await accounts.disable_staff(db, name="dilnoza")
        assert await sessions.find_session(db, token=second.token, now=clock()) is None
        assert (await db.exec(select(StaffSession))).all() == []


async def test_expired_sessions_are_deleted_at_the_next_login(engine: AsyncEngine, clock: Clock) -> None:
    staff = await add(engine, clock)
    async with transaction(engine) as db:
        await sessions.start_session(db, staff=staff, now=clock())
    clock.advance(hours=13)
    async with transaction(engine) as db:
        await sessions.start_session(db, staff=staff, now=clock())
        assert len((await db.exec(select(StaffSession))).all()) == 1


# Throttling


async def test_five_failures_lock_a_name_even_for_the_right_password(
    engine: AsyncEngine, clock: Clock
) -> None:
    await add(engine, clock)
    for _ in range(5):
        assert isinstance(await attempt(engine, clock, password=OTHER_PASSWORD), Refused)
    refused = await attempt(engine, clock)
    assert refused == Throttled(until=clock() + timedelta(minutes=15))
    # From another address too: the lock is on the name.
    assert isinstance(await attempt(engine, clock, address="10.9.9.9"), Throttled)
    clock.advance(minutes=15)
    assert isinstance(await attempt(engine, clock), LoggedIn)


async def test_a_success_resets_the_names_count(engine: AsyncEngine, clock: Clock) -> None:
    await add(engine, clock)
    for _ in range(4):
        await attempt(engine, clock, password=OTHER_PASSWORD)
    assert isinstance(await attempt(engine, clock), LoggedIn)
    for _ in range(4):
        await attempt(engine, clock, password=OTHER_PASSWORD)
    assert isinstance(await attempt(engine, clock), LoggedIn)


async def test_failures_older_than_the_window_are_forgotten(engine: AsyncEngine, clock: Clock) -> None:
    await add(engine, clock)
    for _ in range(4):
        await attempt(engine, clock, password=OTHER_PASSWORD)
    clock.advance(minutes=16)
    for _ in range(4):
        await attempt(engine, clock, password=OTHER_PASSWORD)
    assert isinstance(await attempt(engine, clock), LoggedIn)


async def test_many_names_tried_from_one_address_lock_the_address(engine: AsyncEngine, clock: Clock) -> None:
    await add(engine, clock)
    rules = throttle.RULES
    for n in range(rules.address_failures):
        assert isinstance(await attempt(engine, clock, name=f"guess{n}"), Refused)
    assert isinstance(await attempt(engine, clock), Throttled)  # a real name, from that address
    assert isinstance(await attempt(engine, clock, address="10.0.0.2"), LoggedIn)


async def test_the_throttle_table_holds_neither_names_nor_addresses(
    engine: AsyncEngine, clock: Clock
) -> None:
    await attempt(engine, clock, name="secret-name", address="192.0.2.77")
    async with transaction(engine) as db:
        rows = (await db.exec(select(LoginThrottle))).all()
    assert len(rows) == 2
    for row in rows:
        assert "secret-name" not in row.key
        assert "192.0.2.77" not in row.key
        assert len(row.key) == 64


async def test_stale_throttle_rows_are_cleared(engine: AsyncEngine, clock: Clock) -> None:
    for n in range(3):
        await attempt(engine, clock, name=f"guess{n}", address=f"10.0.1.{n}")
    clock.advance(hours=1)
    await attempt(engine, clock, name="late", address="10.0.2.1")
    async with transaction(engine) as db:
        assert len((await db.exec(select(LoginThrottle))).all()) == 2


# Audit


async def test_audit_records_who_did_what_and_reads_newest_first(engine: AsyncEngine, clock: Clock) -> None:
    staff = await add(engine, clock)
    async with transaction(engine) as db:
        await audit.record(db, staff=staff, action="viewed", case_id=7, now=clock())
        clock.advance(minutes=1)
        await audit.record(db, staff=None, action="token_issued", detail="x" * 500, now=clock())
        clock.advance(minutes=1)
        await audit.record(db, staff=staff, action="claimed", case_id=8, now=clock())
        with pytest.raises(ValueError, match="audit action"):
            await audit.record(db, staff=staff, action="a" * 33, now=clock())
    async with transaction(engine) as db:
        everything = await audit.read_log(db)
        by_case = await audit.read_log(db, case_id=7)
        mine = await audit.read_log(db, staff_id=staff.id)
        older = await audit.read_log(db, before_id=everything[0].id, limit=1)
    assert [e.action for e in everything] == ["claimed", "token_issued", "viewed"]
    assert everything[1].staff_name == audit.COMMAND_LINE
    assert everything[1].staff_id is None
    assert len(everything[1].detail) == 200
    assert [(e.action, e.staff_name) for e in by_case] == [("viewed", "dilnoza")]
    assert [e.action for e in mine] == ["claimed", "viewed"]
    assert [e.action for e in older] == ["token_issued"]


async def test_logins_are_audited(engine: AsyncEngine, clock: Clock) -> None:
    await add(engine, clock)
    await attempt(engine, clock)
    await attempt(engine, clock, password=OTHER_PASSWORD)
    async with transaction(engine) as db:
        assert [(e.staff_name, e.action) for e in (await db.exec(select(AuditEntry))).all()] == [
            ("dilnoza", "login")
        ]


# Reading a password


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_password_is_one_line_or_the_same_line_twice() -> None:
    assert read_password(io.StringIO(f"{PASSWORD}\n")) == PASSWORD
    assert read_password(io.StringIO(f"{PASSWORD}\r\n{PASSWORD}\r\n")) == PASSWORD
    with pytest.raises(InputError, match="differ"):
        read_password(io.StringIO(f"{PASSWORD}\n{OTHER_PASSWORD}\n"))
    with pytest.raises(InputError, match="one line"):
        read_password(io.StringIO(""))
    with pytest.raises(InputError, match="one line"):
        read_password(io.StringIO(f"{PASSWORD}\n{PASSWORD}\n{PASSWORD}\n"))
    with pytest.raises(WeakPassword):
        read_password(io.StringIO("short\n"))


def test_a_terminal_is_asked_twice_without_echo() -> None:
    prompts: list[str] = []
    answers = iter([PASSWORD, PASSWORD, PASSWORD, OTHER_PASSWORD])

    def ask(prompt: str) -> str:
        prompts.append(prompt)
        return next(answers)

    assert read_password(Terminal(), ask=ask) == PASSWORD
    with pytest.raises(InputError, match="differ"):
        read_password(Terminal(), ask=ask)
    assert len(prompts) == 4


# The command line


def hamroh(
    args: list[str], database_url: str, tmp_path: Path, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return run_hamroh(["staff", *args], tmp_path, stdin=stdin, HAMROH_DATABASE_URL=database_url)


def test_the_staff_commands_from_adding_to_disabling(database_url: str, tmp_path: Path) -> None:
    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        result = hamroh(list(args), database_url, tmp_path, stdin)
        assert "Traceback" not in result.stderr
        assert PASSWORD not in result.stdout + result.stderr
        return result

    added = run("add", "dilnoza", "--role", "counsellor", stdin=f"{PASSWORD}\n")
    assert (added.returncode, added.stdout.strip()) == (0, "added dilnoza (counsellor)")
    assert run("add", "zarina", "--role", "coordinator", stdin=f"{PASSWORD}\n{PASSWORD}\n").returncode == 0

    issued = run("token", "dilnoza")
    assert issued.returncode == 0
    token = issued.stdout.splitlines()[-1]
    assert token.startswith("hamroh_")
    assert " " not in token
    assert len(token) > 40
    assert token not in issued.stderr

    listing = run("list")
    assert listing.returncode == 0
    assert listing.stdout.splitlines()[1:] == [
        "dilnoza  counsellor   no        yes",
        "zarina   coordinator  no        no",
    ]
    assert token not in listing.stdout
    assert "argon2" not in listing.stdout
    assert hashlib.sha256(token.encode()).hexdigest() not in listing.stdout

    assert run("password", "dilnoza", stdin=f"{OTHER_PASSWORD}\n").returncode == 0
    revoked = run("token", "dilnoza", "--revoke")
    assert (revoked.returncode, revoked.stdout.strip()) == (0, "API token of dilnoza revoked")

    disabled = run("disable", "zarina")
    assert disabled.returncode == 0
    assert "zarina   coordinator  yes       no" in run("list").stdout


REFUSALS = [
    (["add", "dilnoza", "--role", "counsellor"], f"{PASSWORD}\n", "exists already"),
    (["add", "rustam", "--role", "counsellor"], "short\n", "at least 12 characters"),
    (
        ["add", "rustam", "--role", "counsellor"],
        f"{PASSWORD}\n{OTHER_PASSWORD}\n",
        "the two passwords differ",
    ),
    (["add", "rustam", "--role", "counsellor"], "", "one line, or the same line twice"),
    (["add", "rustam", "--role", "boss"], f"{PASSWORD}\n", "unknown role 'boss'"),
    (["password", "nobody"], f"{PASSWORD}\n", "no staff account is named 'nobody'"),
    (["password", "dilnoza"], "short\n", "at least 12 characters"),
    (["disable", "nobody"], "", "no staff account is named 'nobody'"),
    (["token", "nobody"], "", "no staff account is named 'nobody'"),
    (["token", "nobody", "--revoke"], "", "no staff account is named 'nobody'"),
]


def test_the_staff_commands_refuse_clearly(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # In this process: the same entry point as the command, without starting Python ten times.
    for name in [k for k in os.environ if k.startswith("HAMROH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HAMROH_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("HAMROH_VAR_DIR", str(tmp_path))
    monkeypatch.setattr(logging.getLogger(), "level", logging.getLogger().level)

    def staff(args: list[str], stdin: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = cli.main(["staff", *args])
        out, err = capsys.readouterr()
        return code, out, err

    assert staff(["add", "dilnoza", "--role", "counsellor"], f"{PASSWORD}\n")[0] == 0
    for args, stdin, message in REFUSALS:
        code, out, err = staff(args, stdin)
        assert (code, out) == (1, ""), args
        assert message in err, args
        assert "Traceback" not in err
    assert "rustam" not in staff(["list"], "")[1]


def test_the_password_is_never_an_argument(sqlite_url: str, tmp_path: Path) -> None:
    result = hamroh(["add", "dilnoza", "--role", "admin", "--password", PASSWORD], sqlite_url, tmp_path)
    assert result.returncode == 2
    assert "unrecognized arguments" in result.stderr


def test_the_staff_commands_ask_for_a_migrated_database(tmp_path: Path) -> None:
    result = hamroh(["list"], f"sqlite:///{tmp_path / 'empty.db'}", tmp_path)
    assert result.returncode == 1
    assert "hamroh db upgrade" in result.stderr
