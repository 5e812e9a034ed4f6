"""Catalogues: loading translations, and the Babel extractor that reads msgids out of flow files."""

from __future__ import annotations

import gettext
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any

from babel.messages.pofile import read_po

from bot.conversation.flowspec import Lines, parse_yaml

log = logging.getLogger(__name__)
DOMAIN = "messages"

# Fields of flow and data files whose values are msgids (a path pattern; "*" is any key or index).
MSGID_PATHS: tuple[tuple[str, ...], ...] = (
    ("title",),
    ("nodes", "*", "say"),
    ("nodes", "*", "parts", "*"),
    ("nodes", "*", "ask"),
    ("nodes", "*", "invalid"),
    ("nodes", "*", "source"),
    ("nodes", "*", "options", "*", "label"),
    ("strings", "*"),
    ("services", "*", "name"),
    ("services", "*", "ask_at"),
)


@dataclass(frozen=True)
class Translations:
    """Translated strings per language: msgid -> msgstr. English is the source and needs none."""

    catalogues: Mapping[str, Mapping[str, str]]

    def get(self, lang: str, msgid: str) -> str:
        """The translation of `msgid` in `lang`, or the msgid itself when there is none."""
        return self.catalogues.get(lang, {}).get(msgid) or msgid

    def has(self, lang: str, msgid: str) -> bool:
        """Whether `lang` translates `msgid` (English always does)."""
        return lang == "en" or bool(self.catalogues.get(lang, {}).get(msgid))


def load_translations(locales_dir: Path, langs: tuple[str, ...] = ("tg", "ru")) -> Translations:
    """Read each language's compiled catalogue, or its .po file when it has not been compiled."""
    catalogues: dict[str, Mapping[str, str]] = {}
    for lang in langs:
        folder = locales_dir / lang / "LC_MESSAGES"
        mo, po = folder / f"{DOMAIN}.mo", folder / f"{DOMAIN}.po"
        if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
            with mo.open("rb") as handle:
                found = gettext.GNUTranslations(handle)
            catalog: dict[object, str] = getattr(found, "_catalog", {})  # gettext keeps its table private
            messages = {k: str(v) for k, v in catalog.items() if isinstance(k, str) and k}
        elif po.exists():
            log.warning("catalogue for %s is not compiled; reading %s", lang, po.name)
            messages = {
                str(m.id): str(m.string)
                for m in read_po_file(po)
                if m.id and isinstance(m.id, str) and m.string and not m.fuzzy
            }
        else:
            log.warning("no catalogue for %s", lang)
            messages = {}
        catalogues[lang] = MappingProxyType(messages)
    return Translations(MappingProxyType(catalogues))


def read_po_file(path: Path) -> Any:
    """A parsed .po catalogue (babel's Catalog)."""
    with path.open("rb") as handle:
        return read_po(handle, abort_invalid=True)


def msgids_with_lines(data: Any, lines: Lines) -> Iterator[tuple[int, str]]:
    """Every msgid of a parsed flow or data file, with its line."""
    for pattern in MSGID_PATHS:
        for path, value in _matches(data, pattern, ()):
            if isinstance(value, str) and value.strip():
                yield lines.get(path, 0), value


def _matches(
    data: Any, pattern: tuple[str, ...], path: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    if not pattern:
        yield path, data
        return
    head, rest = pattern[0], pattern[1:]
    if isinstance(data, dict):
        keys = list(data) if head == "*" else ([head] if head in data else [])
        for key in keys:
            yield from _matches(data[key], rest, (*path, str(key)))
    elif isinstance(data, list) and head == "*":
        for index, item in enumerate(data):
            yield from _matches(item, rest, (*path, index))


def extract_flows(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any
) -> Iterator[tuple[int, str, str, list[str]]]:
    """Babel extractor for flow files: `pybabel extract -F babel.cfg` finds every msgid with its line."""
    name = getattr(fileobj, "name", "flow.yaml")
    path = Path(name if isinstance(name, str) else "flow.yaml")
    data, lines = parse_yaml(fileobj.read().decode("utf-8"), path.name)
    for line, msgid in msgids_with_lines(data, lines):
        yield line, "", msgid, []
