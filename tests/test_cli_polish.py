"""The `hamroh` command says what went wrong in one line, keeps library chatter out, means what it says."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from bot.conversation.flows import FlowSet
from bot.readiness.facts import facts_to_confirm
from tests.conftest import TEST_ENCRYPTION_KEY, TEST_HASH_KEY, run_hamroh, serving_process, until_serving

SERVING = re.compile(r"serving on (http://\S+)")


@pytest.mark.parametrize(("channel", "address"), [("sms", "hello"), ("telegram", "+99290")])
def test_chat_from_a_bad_address_says_so_in_one_line(tmp_path: Path, channel: str, address: str) -> None:
    result = run_hamroh(["chat", "--channel", channel, "--from", address], tmp_path, stdin="1\n")

    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("hamroh: --from: not a ")
    assert address not in line  # an address is never echoed: it may be a real number


def test_the_terminal_chat_shows_no_migration_chatter(tmp_path: Path) -> None:
    result = run_hamroh(["chat", "--lang", "ru"], tmp_path, stdin="0\n")  # a fresh database: migrated first

    assert result.returncode == 0, result.stderr
    assert "alembic" not in result.stdout + result.stderr
    assert "Running upgrade" not in result.stdout + result.stderr


def test_a_pilot_serves_once_bound_and_logs_each_unconfirmed_fact(
    tmp_path: Path, sqlite_url: str, flows: FlowSet
) -> None:
    pilot = {
        "HAMROH_ENV": "production",
        "HAMROH_DATABASE_URL": sqlite_url,
        "HAMROH_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "HAMROH_HASH_KEY": TEST_HASH_KEY,
        "HAMROH_ALLOW_UNCONFIRMED": "true",
    }
    seen: list[str] = []
    with serving_process(tmp_path, **pilot) as (process, lines):
        url = until_serving(lines, seen)
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200  # at once: the socket is bound
        assert process.poll() is None
    while not lines.empty():
        seen.append(lines.get())

    output = "\n".join(seen)
    assert "alembic" not in output
    assert "Traceback" not in output
    assert TEST_HASH_KEY not in output
    assert sum("serving on" in line for line in seen) == 1
    for fact in facts_to_confirm(flows):
        [warned] = [line for line in seen if f"WARNING hamroh: fact {fact.id} " in line]
        assert warned.endswith(f"not confirmed: hamroh facts confirm {fact.id} --by NAME")
