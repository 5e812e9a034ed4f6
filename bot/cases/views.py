"""Cases as staff see them: a queue of summaries (urgent first, then the longest waiting) and one case in
full. Her address is always masked here; only `actions.unmask` opens it, and audits it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select

from bot.cases.actions import CaseNotFound
from bot.cases.transcript import Line, lines
from bot.conversation.model import SCRIPTS, Script
from bot.store import OPEN_STATUSES, Case, Contact, OutboxMessage, Staff
from bot.store.crypto import Vault, mask

STATUSES = ("waiting", "active", "closed")


@dataclass(frozen=True)
class CaseSummary:
    """One row of the queue: what a counsellor needs to choose a case, with her address masked."""

    id: int
    status: str  # waiting | active | closed
    priority: str  # urgent | normal
    category: str
    queue: str
    channel: str
    lang: str | None
    opened_at: datetime
    waiting_since: datetime
    address: str | None  # masked; None once she erased her data
    counsellor: str | None  # who holds it (or closed it), by name
    counsellor_id: int | None
    last_her_at: datetime | None
    waiting_for: timedelta | None = None  # for waiting cases: how long, as of the listing


@dataclass(frozen=True)
class CaseDetail:
    """One case in full, for the person working on it: transcript (notes included), topics she read before
    asking, closing outcome and note, her safe hours and how many messages wait for them."""

    summary: CaseSummary
    messages: list[Line]
    topics: list[str]
    outcome: str | None
    note: str | None
    safe_hours: str | None  # "18:00-21:00" Dushanbe time; None: any time
    held: int  # messages to her waiting for her safe hours
    erased: bool
    script: Script  # the letters of her SMS, for the cost shown while typing

    @property
    def id(self) -> int:
        """The case id."""
        return self.summary.id


async def list_cases(
    db: AsyncSession, vault: Vault, *, status: str | None = None, now: datetime, limit: int = 500
) -> list[CaseSummary]:
    """Cases in the order they should be taken: urgent first, then the longest waiting. Without a status,
    the open ones (waiting and active)."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of: {', '.join(STATUSES)}")
    statuses = (status,) if status is not None else OPEN_STATUSES
    query = (
        _summaries()
        .where(col(Case.status).in_(statuses))
        .order_by(col(Case.priority_rank), col(Case.waiting_since), col(Case.id))
        .limit(limit)
    )
    rows = (await db.exec(query)).all()
    return [_summary(vault, case, address, name, now) for case, address, name in rows]


async def case_summary(db: AsyncSession, vault: Vault, *, case_id: int, now: datetime) -> CaseSummary:
    """One case as a row of the queue (CaseNotFound when there is none): the answer to a step on it."""
    row = (await db.exec(_summaries().where(Case.id == case_id))).first()
    if row is None:
        raise CaseNotFound("no such case")
    case, address, name = row
    return _summary(vault, case, address, name, now)


async def case_detail(db: AsyncSession, vault: Vault, *, case_id: int) -> CaseDetail:
    """One case in full (CaseNotFound when there is none)."""
    query = (
        select(Case, Contact, Staff.name)
        .outerjoin(Contact, col(Contact.id) == col(Case.contact_id))
        .outerjoin(Staff, col(Staff.id) == col(Case.counsellor_id))
        .where(Case.id == case_id)
    )
    row = (await db.exec(query)).first()
    if row is None:
        raise CaseNotFound("no such case")
    case, contact, name = row
    held = 0
    if contact is not None:
        counted = await db.exec(
            select(sa.func.count())
            .select_from(OutboxMessage)
            .where(col(OutboxMessage.contact_id) == contact.id, col(OutboxMessage.held))
        )
        held = int(counted.one())
    return CaseDetail(
        summary=_summary(vault, case, contact.address if contact else None, name, None),
        messages=await lines(db, vault, case_id),
        topics=_topics(case.topics),
        outcome=case.outcome,
        note=vault.open(case.note) if case.note is not None else None,
        safe_hours=contact.safe_hours if contact is not None else None,
        held=held,
        erased=case.contact_id is None and case.outcome == "erased",
        script=_script(contact.script if contact is not None else None),
    )


def _summaries() -> Select[Case, bytes, str]:
    return (
        select(Case, Contact.address, Staff.name)
        .outerjoin(Contact, col(Contact.id) == col(Case.contact_id))
        .outerjoin(Staff, col(Staff.id) == col(Case.counsellor_id))
    )


def _summary(
    vault: Vault, case: Case, sealed: bytes | None, counsellor: str | None, now: datetime | None
) -> CaseSummary:
    assert case.id is not None
    waiting = now - case.waiting_since if now is not None and case.status == "waiting" else None
    return CaseSummary(
        id=case.id,
        status=case.status,
        priority=case.priority,
        category=case.category,
        queue=case.queue,
        channel=case.channel,
        lang=case.lang,
        opened_at=case.opened_at,
        waiting_since=case.waiting_since,
        address=mask(vault.open(sealed)) if sealed is not None else None,
        counsellor=counsellor,
        counsellor_id=case.counsellor_id,
        last_her_at=case.last_her_at,
        waiting_for=waiting,
    )


def _topics(stored: str) -> list[str]:
    try:
        topics = json.loads(stored)
    except ValueError:  # a damaged list hides the topics, never the case
        return []
    return [str(t) for t in topics] if isinstance(topics, list) else []


def _script(value: str | None) -> Script:
    return value if value in SCRIPTS else "cyrillic"
