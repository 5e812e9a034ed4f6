"""Canaries: her phone number, chat id and words appear nowhere in plain form: no table, no log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bot.logs import install_redaction, redact
from bot.service import Hamroh, Inbound
from bot.store import METADATA

CANARY_PHONE = "+992 93 771 19 42"
CANARY_DIGITS = "937711942"
CANARY_CHAT = "tg:8877665544"
CANARY_WORDS = ("Зулфияканарейка", "Qanareyka7731", "canary-pin-5521")


async def dump_every_table(hamroh: Hamroh) -> str:
    """Every row of every table, bytes included, as one text."""
    parts = []
    async with hamroh.engine.connect() as connection:
        for table in METADATA.sorted_tables:
            for row in (await connection.execute(sa.select(table))).all():
                for value in row:
                    parts.append(value.decode("latin-1") if isinstance(value, bytes) else str(value))
    return "\n".join(parts)


def assert_no_canary(text: str, where: str) -> None:
    for canary in (CANARY_DIGITS, CANARY_CHAT, "8877665544", *CANARY_WORDS):
        assert canary not in text, f"{canary!r} found in {where}"


async def talk_with_canaries(hamroh: Hamroh) -> None:
    """Both channels; canaries typed at the greeting, in menus, as a district, with a topic word."""
    words = " ".join(CANARY_WORDS)
    script = [
        "hi",
        "1",
        words,
        "2",
        words,
        "Джиликуль",
        "0",
        "3",
        "4",
        words,
        f"меню {words}",
        f"алимент {words}",
        "0",
        "3",
        "1",
        words,
        "Бохтар",
        "0",
        "5",
        "3",
        words,
    ]
    for n, text in enumerate(script):
        await hamroh.handle(Inbound("sms", CANARY_PHONE, text, provider_id=f"p{n}"))
        await hamroh.handle(Inbound("telegram", CANARY_CHAT.removeprefix("tg:"), text, provider_id=f"t{n}"))
    await hamroh.handle(Inbound("telegram", CANARY_CHAT, "", button=f"main.menu:{words[:20]}"))


@pytest.fixture(params=["small flows", "real flows"])
def any_hamroh(request: pytest.FixtureRequest) -> Hamroh:
    service: Hamroh = request.getfixturevalue("small_hamroh" if request.param == "small flows" else "hamroh")
    return service


async def test_canaries_appear_in_no_table_and_no_log(
    any_hamroh: Hamroh, caplog: pytest.LogCaptureFixture, database_url: str
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("", "sqlalchemy.engine", "aiosqlite", "asyncpg", "bot", "api"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    install_redaction(caplog.handler)
    try:
        await talk_with_canaries(any_hamroh)
    finally:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    assert caplog.records, "logging was not captured"
    assert_no_canary(caplog.text, "the log output")
    assert_no_canary(await dump_every_table(any_hamroh), "a table")
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        await any_hamroh.engine.dispose()  # the last connection closing checkpoints the WAL
        files = Path(str(url.database)).parent.glob("hamroh.db*")
        raw = b"".join(path.read_bytes() for path in files)
        assert_no_canary(raw.decode("utf-8", "replace"), "the SQLite file")
        for word in CANARY_WORDS:
            assert word.encode("utf-16-le") not in raw


def test_redaction_removes_tokens_numbers_and_chat_ids() -> None:
    line = (
        "POST https://api.telegram.org/bot123456789:AAHk3jsd8f7sdf6sd5f4sd3f2sd1f0sdfsdf/sendMessage "
        "chat_id=tg:8877665544 to +992 93 771 19 42 sid SM0123456789abcdef0123456789abcdef"
    )
    cleaned = redact(line)
    for secret in ("AAHk3jsd8f7", "8877665544", "771 19 42", "0123456789abcdef"):
        assert secret not in cleaned
    assert "sendMessage" in cleaned


def test_a_logged_traceback_is_redacted_too(caplog: pytest.LogCaptureFixture) -> None:
    install_redaction(caplog.handler)
    try:
        raise ValueError(
            "The token `123456789:AAHk3jsd8f7sdf6sd5f4sd3f2sd1f0sdfsdf` was rejected for +992 93 771 19 42"
        )
    except ValueError:
        logging.getLogger("bot.test").exception("sending failed")
    assert "AAHk3jsd8f7" not in caplog.text
    assert "771 19 42" not in caplog.text
    assert "ValueError" in caplog.text
