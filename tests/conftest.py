"""Shared fixtures: the real content, a clock moved by hand, databases made and dropped per test."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from bot.config import ROOT, Settings
from bot.conversation.flowload import load_flowset
from bot.conversation.flows import FlowSet
from bot.conversation.i18n import Translations, load_translations
from bot.service import Hamroh
from bot.store import Contact
from bot.store.crypto import Vault, make_vault
from bot.store.db import create_engine
from bot.store.migrate import upgrade

POSTGRES_URL = os.environ.get("HAMROH_TEST_POSTGRES_URL")
TEST_ENCRYPTION_KEY = "x8Jm2C0j0W2oQ2gQJ3bq1V5xvJt0m7Ykq3d7S0xwZ3U="
TEST_HASH_KEY = "test-hash-key-that-is-long-enough-for-hmac-0123456789"


@dataclass
class Clock:
    """A clock tests move by hand."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 28, 9, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Tokens:
    """Pseudonyms that are predictable in tests."""

    issued: int = 0

    def __call__(self) -> str:
        self.issued += 1
        return f"pseudonym{self.issued:04d}"


@pytest.fixture(scope="session")
def flows() -> FlowSet:
    """The real flow files and catalogues of the repository."""
    return load_flowset(ROOT / "flows", load_translations(ROOT / "locales"))


@pytest.fixture(scope="session")
def small_flows() -> FlowSet:
    """A small flow set of the tests' own (tests/data/flows), English only: exact and stable."""
    return load_flowset(Path(__file__).parent / "data" / "flows", Translations(MappingProxyType({})))


@pytest.fixture
def vault() -> Vault:
    return make_vault(TEST_ENCRYPTION_KEY, TEST_HASH_KEY)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file migrated to head once per run; each test gets a copy (migrating is the slow part)."""
    path = tmp_path_factory.mktemp("template") / "hamroh.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, migrated_sqlite: Path) -> str:
    path = tmp_path / "hamroh.db"
    shutil.copyfile(migrated_sqlite, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A PostgreSQL database migrated to head once per run, the template each test's database copies."""
    if not POSTGRES_URL:
        pytest.skip("HAMROH_TEST_POSTGRES_URL is not set")
    name = f"hamroh_template_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        upgrade(make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False))
        yield name
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_template: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards (leftovers never matter)."""
    name = f"hamroh_test_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    url = make_url(POSTGRES_URL or "").set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(sql: str) -> None:
    assert POSTGRES_URL

    async def run() -> None:
        connection = await asyncpg.connect(POSTGRES_URL)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(run())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs on SQLite and on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
async def hamroh(database_url: str, flows: FlowSet, vault: Vault, clock: Clock) -> AsyncIterator[Hamroh]:
    """The service with the real content, on each database."""
    engine = create_engine(database_url)
    yield Hamroh(engine=engine, flows=flows, vault=vault, clock=clock, new_token=Tokens())
    await engine.dispose()


@pytest.fixture
async def small_hamroh(
    database_url: str, small_flows: FlowSet, vault: Vault, clock: Clock
) -> AsyncIterator[Hamroh]:
    """The service with the tests' small flow set, on each database."""
    engine = create_engine(database_url)
    yield Hamroh(engine=engine, flows=small_flows, vault=vault, clock=clock, new_token=Tokens())
    await engine.dispose()


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> Settings:
    return settings_for_tests(tmp_path, sqlite_url)


def settings_for_tests(tmp_path: Path, database_url: str, **more: Any) -> Settings:
    """Development settings on this database, with the tests' keys, and anything else a test needs."""
    return Settings(
        env="development",
        database_url=database_url,
        var_dir=tmp_path,
        encryption_key=TEST_ENCRYPTION_KEY,
        hash_key=TEST_HASH_KEY,
        **more,
    )


def telegram_contact(vault: Vault, address: str, now: datetime) -> Contact:
    """A contact row as the service would create it for a Telegram chat (for tests that fill the outbox)."""
    return Contact(
        channel="telegram",
        fingerprint=vault.fingerprint(address),
        address=vault.seal(address),
        pseudonym="p",
        pseudonym_month=now.strftime("%Y-%m"),
        created_at=now,
    )


def run_hamroh(
    args: list[str], tmp_path: Path, *, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    """`hamroh ARGS` in a process of its own, with no HAMROH_ variable but these (by default a database
    file and the var folder under tmp_path)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HAMROH_")}
    environment |= {
        "HAMROH_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "HAMROH_VAR_DIR": str(tmp_path),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


SERVING_ON = re.compile(r"serving on (http://\S+)")


@contextmanager
def serving_process(
    tmp_path: Path, *args: str, **env: str
) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str]]]:
    """`hamroh serve --port 0 ARGS` in a process of its own; its output lines arrive on the queue."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HAMROH_")}
    environment |= {"HAMROH_VAR_DIR": str(tmp_path), **env}
    lines: queue.Queue[str] = queue.Queue()
    with subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
        cwd=tmp_path,
    ) as process:

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.put(line.rstrip("\n"))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            yield process, lines
        finally:
            process.terminate()
            process.wait(timeout=20)
            reader.join(timeout=20)  # every line is on the queue before the pipe closes


def until_serving(lines: queue.Queue[str], seen: list[str]) -> str:
    """The URL of the "serving on" line, once it comes; every line before it goes into `seen`."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = lines.get(timeout=deadline - time.monotonic())
        seen.append(line)
        if match := SERVING_ON.search(line):
            return match.group(1)
    raise AssertionError("serve never said where it listens:\n" + "\n".join(seen))
