"""Transcripts: her words and the staff's, only for cases, sealed with the same vault as addresses."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.store import Case, CaseMessage
from bot.store.crypto import Vault

AUTHORS = ("her", "staff", "bot", "note", "system")


@dataclass(frozen=True)
class Line:
    """One transcript line, opened for the console: who, what, when (and a media reference, if any)."""

    id: int
    author: str  # her | staff | bot | note | system
    text: str
    at: datetime
    staff_id: int | None = None
    media: dict[str, Any] | None = None  # {"kind": "photo"|"voice"|..., "ref": provider file reference}


def add(
    db: AsyncSession,
    vault: Vault,
    *,
    case: Case,
    author: str,
    text: str,
    now: datetime,
    staff_id: int | None = None,
    media: dict[str, Any] | None = None,
) -> CaseMessage:
    """Append a line to a case's transcript (sealed)."""
    assert author in AUTHORS, author
    assert case.id is not None
    body: dict[str, Any] = {"text": text}
    if media is not None:
        body["media"] = media
    message = CaseMessage(
        case_id=case.id,
        author=author,
        staff_id=staff_id,
        body=vault.seal(json.dumps(body, ensure_ascii=False)),
        at=now,
    )
    db.add(message)
    return message


def opened(vault: Vault, message: CaseMessage) -> Line:
    """A stored line, unsealed."""
    assert message.id is not None
    body = json.loads(vault.open(message.body))
    return Line(
        message.id, message.author, str(body.get("text", "")), message.at, message.staff_id, body.get("media")
    )


async def lines(db: AsyncSession, vault: Vault, case_id: int, *, after_id: int = 0) -> list[Line]:
    """A case's transcript in order (only lines newer than `after_id` when given)."""
    query = (
        select(CaseMessage)
        .where(CaseMessage.case_id == case_id, col(CaseMessage.id) > after_id)
        .order_by(col(CaseMessage.id))
    )
    return [opened(vault, m) for m in (await db.exec(query)).all()]
