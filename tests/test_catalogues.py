"""Catalogues: Babel extracts every flow string; tg and ru translate each one, with the same numbers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.plurals import get_plural

from bot.config import ROOT
from bot.conversation.i18n import read_po_file
from bot.flowcheck import numbers

LOCALES = ROOT / "locales"


def extracted() -> set[str]:
    found = extract_from_dir(str(ROOT / "flows"), method_map=[("*.yaml", "hamroh_flows")])
    return {message for _file, _line, message, _comments, _context in found if isinstance(message, str)}


def catalogue(lang: str) -> dict[str, tuple[str, bool]]:
    po = read_po_file(LOCALES / lang / "LC_MESSAGES" / "messages.po")
    return {str(m.id): (str(m.string or ""), bool(m.fuzzy)) for m in po if m.id}


def test_babel_finds_the_flow_strings_through_its_own_extractor(tmp_path: Path) -> None:
    pot = tmp_path / "messages.pot"
    command = [
        sys.executable,
        "-m",
        "babel.messages.frontend",
        "extract",
        "-F",
        str(ROOT / "babel.cfg"),
        "-o",
        str(pot),
        ".",
    ]
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT, timeout=120)
    text = pot.read_text(encoding="utf-8")
    assert 'msgid "How can I help you?"' in text
    assert "#: flows/main.yaml:" in text
    assert len(extracted()) > 100


@pytest.mark.parametrize("lang", ["tg", "ru"])
def test_every_string_is_translated_and_none_is_fuzzy(lang: str) -> None:
    entries = catalogue(lang)
    missing = sorted(m for m in extracted() if not entries.get(m, ("", False))[0])
    fuzzy = sorted(m for m, (_, is_fuzzy) in entries.items() if is_fuzzy)
    assert missing == []
    assert fuzzy == []


@pytest.mark.parametrize("lang", ["tg", "ru"])
def test_a_translation_has_the_numbers_of_its_source(lang: str) -> None:
    wrong = {m: s for m, (s, _) in catalogue(lang).items() if s and numbers(s) != numbers(m)}
    assert wrong == {}


@pytest.mark.parametrize("lang", ["tg", "ru", "en"])
def test_the_plural_header_is_babels_for_the_language(lang: str) -> None:
    po = read_po_file(LOCALES / lang / "LC_MESSAGES" / "messages.po")
    assert po.plural_forms == get_plural(lang).plural_forms
    assert str(po.locale) == lang


@pytest.mark.parametrize("lang", ["tg", "ru"])
def test_a_catalogue_compiles_without_errors(lang: str) -> None:
    po = read_po_file(LOCALES / lang / "LC_MESSAGES" / "messages.po")
    problems = [(message.id, [str(e) for e in errors]) for message, errors in po.check()]
    assert problems == []
