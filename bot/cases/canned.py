"""Canned replies for counsellors, from `flows/canned.yaml`: data a counsellor edits without code,
checked by `hamroh flows check`.

The file is read again whenever it changes, so an edit shows on the next page without a restart. A file
that cannot be used is reported with its reason (and the page goes on without canned replies): a typo in
it must never take a counsellor's case page away.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

log = logging.getLogger(__name__)

FILE_NAME = "canned.yaml"
MAX_TEXT = 480  # a reply, not a letter: at most about seven Cyrillic SMS segments

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT)]


class CannedReply(BaseModel):
    """One reply: what the button says, and the text in Tajik and Russian."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,40}$")]
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]
    tg: Text
    ru: Text

    def text(self, lang: str) -> str:
        """The text in `lang` (tg or ru)."""
        return self.ru if lang == "ru" else self.tg


class CannedFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    replies: Annotated[list[CannedReply], Field(min_length=1, max_length=40)]

    @field_validator("replies")
    @classmethod
    def _ids_are_unique(cls, replies: list[CannedReply]) -> list[CannedReply]:
        seen: set[str] = set()
        for reply in replies:
            if reply.id in seen:
                raise ValueError(f"the id {reply.id!r} is used twice")
            seen.add(reply.id)
        return replies


class CannedError(ValueError):
    """The file cannot be used; the message names the file and the problem."""


def load(path: Path) -> tuple[CannedReply, ...]:
    """The replies of a canned file (CannedError with the reason when it cannot be used)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CannedError(f"{path.name}: cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise CannedError(f"{path.name}{where}: not valid YAML") from None
    try:
        return tuple(CannedFile.model_validate(data).replies)
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise CannedError(f"{path.name}: {reasons}") from None


@dataclass
class Canned:
    """The canned file of a flows folder, read again when it changes."""

    path: Path
    _stamp: tuple[int, int] | None = None
    _replies: tuple[CannedReply, ...] = ()
    _problem: str | None = None

    def read(self) -> tuple[tuple[CannedReply, ...], str | None]:
        """The replies, and what is wrong with the file (None when nothing is)."""
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        if stamp != self._stamp or stamp is None:
            try:
                self._replies, self._problem = load(self.path), None
            except CannedError as exc:
                self._replies, self._problem = (), str(exc)
                log.warning("canned replies not shown: %s", exc)
            self._stamp = stamp
        return self._replies, self._problem
