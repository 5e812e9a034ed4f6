"""The `hamroh` command says what went wrong in one line, keeps library chatter out, means what it says."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from bot.conversation.flows import FlowSet
from bot.readiness.facts import facts_to_confirm
from tests.conftest import TEST_ENCRYPTION_KEY, TEST_HASH_KEY, run_hamroh

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


@contextmanager
def serving(tmp_path: Path, **env: str) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str]]]:
    """`hamroh serve --port 0` in a process of its own; its output lines arrive on the queue."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HAMROH_")}
    environment |= {"HAMROH_VAR_DIR": str(tmp_path), **env}
    lines: queue.Queue[str] = queue.Queue()
    with subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--port", "0"],
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
        if match := SERVING.search(line):
            return match.group(1)
    raise AssertionError("serve never said where it listens:\n" + "\n".join(seen))


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
    with serving(tmp_path, **pilot) as (process, lines):
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
