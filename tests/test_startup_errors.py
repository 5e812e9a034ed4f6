"""Production start-up refuses weak secrets by the rules of `hamroh check --deploy`, one line each; a
database that cannot be reached at start is one line too. Never a traceback, never a secret's value.

Each case runs the real `hamroh` in a process of its own.
"""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import TEST_ENCRYPTION_KEY, TEST_HASH_KEY, run_hamroh
from tests.test_deploy_check import GOOD_SECRET, PRODUCTION

TWILIO_TOKEN = "0123456789abcdef0123456789abcdef"
LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|WARNING) ")
SMS = {
    "HAMROH_TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "HAMROH_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
    "HAMROH_TWILIO_FROM": "+15005550006",
}

# What each weak setting makes production say, in the words of `hamroh check --deploy`.
WEAK: dict[str, tuple[dict[str, str], str]] = {
    "a hash key of one character again and again": (
        {"HAMROH_HASH_KEY": "ab" * 24},
        "ERROR HAMROH_HASH_KEY: repeated characters",
    ),
    "a blank hash key": ({"HAMROH_HASH_KEY": " " * 40}, "ERROR HAMROH_HASH_KEY: blank"),
    "a short hash key": (
        {"HAMROH_HASH_KEY": "k3y-Of-20-characters"},
        "ERROR HAMROH_HASH_KEY: shorter than 32",
    ),
    "an encryption key that is none": (
        {"HAMROH_ENCRYPTION_KEY": "not-a-fernet-key"},
        "ERROR HAMROH_ENCRYPTION_KEY: not Fernet keys",
    ),
    "a short Telegram secret": (
        {"HAMROH_TELEGRAM_SECRET": "short_secret"},
        "ERROR HAMROH_TELEGRAM_SECRET: shorter than 16",
    ),
    "a Telegram secret with a space": (
        {"HAMROH_TELEGRAM_SECRET": "a secret with spaces in it"},
        "ERROR HAMROH_TELEGRAM_SECRET: only A-Z a-z 0-9 _ -",
    ),
    "a Telegram secret of 257 characters": (
        {"HAMROH_TELEGRAM_SECRET": "s" * 257},
        "ERROR HAMROH_TELEGRAM_SECRET: only A-Z a-z 0-9 _ -",
    ),
    "a blank Twilio token": (
        SMS | {"HAMROH_TWILIO_AUTH_TOKEN": "   "},
        "ERROR HAMROH_TWILIO_AUTH_TOKEN: blank while SMS is on",
    ),
    "SMS without a public URL": (
        SMS | {"HAMROH_PUBLIC_URL": "", "HAMROH_TELEGRAM_TOKEN": "", "HAMROH_TELEGRAM_SECRET": ""},
        "ERROR HAMROH_PUBLIC_URL: missing",
    ),
}


def one_line_each(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The refusal: a non-zero exit, only `hamroh: ` lines on stderr, no traceback, no secret."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if not LOG_RECORD.match(line)]  # warnings logged
    assert lines
    assert all(line.startswith("hamroh: ") for line in lines), result.stderr
    for secret in (GOOD_SECRET, TWILIO_TOKEN, TEST_HASH_KEY, TEST_ENCRYPTION_KEY, "ab" * 24):
        assert secret not in result.stdout + result.stderr
    return lines


def blank_as_unset(env: dict[str, str]) -> dict[str, str]:
    """`run_hamroh` passes variables as given: an empty one here means "not set"."""
    return {k: v for k, v in env.items() if v != ""}


@pytest.mark.parametrize("case", list(WEAK))
def test_production_refuses_a_weak_setting_by_the_deploy_checks_rules(tmp_path: Path, case: str) -> None:
    weak, expected = WEAK[case]
    env = blank_as_unset(PRODUCTION | weak)
    lines = one_line_each(run_hamroh(["dispatch"], tmp_path, **env))
    assert any(line.startswith(f"hamroh: {expected}") for line in lines), lines
    assert lines[-1].startswith("hamroh: not started: ")

    check = run_hamroh(["check", "--deploy"], tmp_path, **env)  # the same rule, in the same words
    assert any(line.startswith(expected) for line in check.stdout.splitlines()), check.stdout


@pytest.mark.parametrize(
    "case", ["a short Telegram secret", "a Telegram secret with a space", "a blank Twilio token"]
)
def test_serve_refuses_them_too(tmp_path: Path, case: str) -> None:
    weak, expected = WEAK[case]
    env = blank_as_unset(PRODUCTION | weak | {"HAMROH_ALLOW_UNCONFIRMED": "true"})
    lines = one_line_each(run_hamroh(["serve", "--port", "0"], tmp_path, **env))
    assert lines[0].startswith(f"hamroh: {expected}")
    assert lines[-1].startswith("hamroh: not started: 1 error")


def test_a_command_that_opens_her_data_refuses_weak_keys_in_production(tmp_path: Path) -> None:
    result = run_hamroh(["purge"], tmp_path, **(PRODUCTION | {"HAMROH_HASH_KEY": "x" * 40}))
    assert one_line_each(result) == [
        "hamroh: ERROR HAMROH_HASH_KEY: repeated characters",
        "hamroh: not started: 1 error, 0 warnings (see `hamroh check --deploy`)",
    ]


def test_an_unusable_key_in_development_is_one_line(tmp_path: Path) -> None:
    result = run_hamroh(
        ["chat"], tmp_path, stdin="1\n", HAMROH_ENCRYPTION_KEY="garbage", HAMROH_HASH_KEY="h" * 40
    )
    assert one_line_each(result)[0] == "hamroh: ERROR HAMROH_ENCRYPTION_KEY: not Fernet keys, comma-separated"


def a_closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


UNREACHABLE = (
    "hamroh: the database cannot be reached: check HAMROH_DATABASE_URL and that the database is running"
)


@pytest.mark.parametrize(
    "command", [["dispatch"], ["serve", "--port", "0"], ["db", "upgrade"], ["outbox", "status"]]
)
def test_a_database_that_cannot_be_reached_at_start_is_one_line(tmp_path: Path, command: list[str]) -> None:
    url = f"postgresql://hamroh:pa55word-never-shown@127.0.0.1:{a_closed_port()}/hamroh"
    env = {"HAMROH_DATABASE_URL": url, "HAMROH_ALLOW_UNCONFIRMED": "true"}
    result = run_hamroh(command, tmp_path, **blank_as_unset(PRODUCTION | env))
    assert one_line_each(result) == [UNREACHABLE]
    assert "pa55word" not in result.stderr


def test_a_sqlite_file_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    url = f"sqlite:///{tmp_path / 'a-file' / 'hamroh.db'}"
    result = run_hamroh(["dispatch"], tmp_path, HAMROH_DATABASE_URL=url)
    assert one_line_each(result) == [UNREACHABLE]
