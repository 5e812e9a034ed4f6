"""The confirmations file (HAMROH_CONFIRMATIONS_FILE): a YAML list, one confirmation per line.

    - {fact: legal.alimony, reviewed: 2026-11-28, by: Dilnoza Karimova, at: 2026-12-01}

`fact` is the fact's id, `reviewed` the fact's reviewed date when it was confirmed, `by` who confirmed it,
`at` the day. Entries are only ever added (`hamroh facts confirm`), so the file reads as a record.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml

from bot.readiness.facts import Confirmation

HEADER = (
    "# Facts confirmed by the deploying organisation (`hamroh facts confirm ID --by NAME` adds a line).\n"
    "# `reviewed` is the fact's reviewed date when it was confirmed: a fact whose date has changed since\n"
    "# needs a new confirmation.\n"
)
FIELDS = ("fact", "reviewed", "by", "at")


class ConfirmationsError(Exception):
    """The confirmations file cannot be read; the message names the file and the entry."""


def parse(text: str, name: str) -> list[Confirmation]:
    """The confirmations in a file's text; ConfirmationsError on anything else."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfirmationsError(f"{name}{line}: not valid YAML") from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise ConfirmationsError(f"{name}: a list of confirmations, one `- {{fact: ..., ...}}` per line")
    return [_entry(item, f"{name}: entry {number}") for number, item in enumerate(data, start=1)]


def _entry(item: Any, where: str) -> Confirmation:
    if not isinstance(item, dict) or set(item) != set(FIELDS):
        raise ConfirmationsError(f"{where}: needs exactly {', '.join(FIELDS)}")
    fact, reviewed, by, at = (item[key] for key in FIELDS)
    if not isinstance(fact, str) or not fact.strip():
        raise ConfirmationsError(f"{where}: fact is a fact's id, such as legal.alimony")
    if reviewed is not None and not _is_date(reviewed):
        raise ConfirmationsError(f"{where}: reviewed is a date (YYYY-MM-DD)")
    if not isinstance(by, str) or not by.strip():
        raise ConfirmationsError(f"{where}: by names who confirmed it")
    if not _is_date(at) and not isinstance(at, dt.datetime):
        raise ConfirmationsError(f"{where}: at is a date (YYYY-MM-DD)")
    day = at.date() if isinstance(at, dt.datetime) else at
    return Confirmation(fact.strip(), reviewed, by.strip(), day)


def _is_date(value: object) -> bool:
    return isinstance(value, dt.date) and not isinstance(value, dt.datetime)


def line(confirmation: Confirmation) -> str:
    """One confirmation as a line of the file."""
    fields = {
        "fact": confirmation.fact,
        "reviewed": confirmation.reviewed,
        "by": confirmation.by,
        "at": confirmation.at,
    }
    flow = yaml.safe_dump(fields, default_flow_style=True, sort_keys=False, allow_unicode=True, width=10**6)
    return f"- {flow.strip()}\n"


def read(path: Path | None) -> list[Confirmation]:
    """The confirmations in the file; none when no file is set or it does not exist yet."""
    if path is None or not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfirmationsError(f"{path}: cannot be read ({type(exc).__name__})") from None
    return parse(text, str(path))


def append(path: Path, confirmation: Confirmation) -> None:
    """Add a confirmation at the end of the file (made with a short header if it does not exist)."""
    before = path.read_text(encoding="utf-8") if path.exists() else HEADER
    if before and not before.endswith("\n"):
        before += "\n"
    after = before + line(confirmation)
    known = len(parse(before, str(path)))
    # The file may have been written by hand in another YAML form: never leave it unreadable.
    try:
        added = len(parse(after, str(path))) == known + 1
    except ConfirmationsError:
        added = False
    if not added:
        raise ConfirmationsError(f"{path}: write it as a YAML list, one `- {{fact: ...}}` line per entry")
    path.parent.mkdir(parents=True, exist_ok=True)
    written = path.with_name(f".{path.name}.new")
    written.write_text(after, encoding="utf-8")
    written.replace(path)  # whole or not at all
