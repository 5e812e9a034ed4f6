"""Her side of a case: opening one when she asks or when her words signal danger, raising it to urgent,
adding her words, closing it when she leaves, and emptying it when she erases her data.

Each function runs inside the turn's transaction; feed events reach the console once it commits.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.cases import events, feed, transcript
from bot.conversation.model import OpenCase
from bot.store import OPEN_STATUSES, Case, CaseMessage, Contact
from bot.store.crypto import Vault

URGENT, NORMAL = "urgent", "normal"
RANK = {URGENT: 0, NORMAL: 1}


async def open_case_of(db: AsyncSession, contact_id: int) -> Case | None:
    """Her waiting or active case, if she has one (at most one: a unique index holds it)."""
    query = select(Case).where(Case.contact_id == contact_id, col(Case.status).in_(OPEN_STATUSES))
    return (await db.exec(query)).first()


def as_seen_by_engine(case: Case | None) -> OpenCase | None:
    """What the engine needs to know of her case."""
    if case is None:
        return None
    return OpenCase("active" if case.status == "active" else "waiting", case.acknowledged)


async def open_or_raise(
    db: AsyncSession,
    *,
    contact: Contact,
    case: Case | None,
    queue: str,
    category: str,
    priority: str,
    topics: Sequence[str],
    now: datetime,
) -> tuple[Case, bool]:
    """Her open case, opened now if she had none, raised to urgent if this is urgent; and whether it
    became urgent in this call (so the caller alerts staff). Never a second open case."""
    assert contact.id is not None
    if case is None:
        case = Case(
            contact_id=contact.id,
            channel=contact.channel,
            lang=contact.lang,
            district=contact.district,
            queue=queue,
            priority=priority,
            priority_rank=RANK[priority],
            category=category,
            topics=json.dumps(list(dict.fromkeys(topics))),
            opened_at=now,
            waiting_since=now,
        )
        db.add(case)
        contact.may_have_case = True
        db.add(contact)
        await db.flush()
        events.record(db, "opened", case, now)
        await feed.publish(db, "case_opened", case, now)
        return case, priority == URGENT
    if priority == URGENT and case.priority != URGENT:
        case.priority, case.priority_rank, case.category = URGENT, RANK[URGENT], category
        db.add(case)
        events.record(db, "raised", case, now)
        await feed.publish(db, "case_raised", case, now)
        return case, True
    return case, False


async def her_words(
    db: AsyncSession,
    vault: Vault,
    *,
    case: Case,
    text: str,
    media: dict[str, Any] | None,
    now: datetime,
) -> CaseMessage:
    """Her message into the transcript; the console hears of it."""
    line = transcript.add(db, vault, case=case, author="her", text=text, media=media, now=now)
    case.last_her_at = now
    db.add(case)
    await feed.publish(db, "case_message", case, now)
    return line


async def close_by_system(
    db: AsyncSession, vault: Vault, *, case: Case, outcome: str, why: str, now: datetime
) -> None:
    """Close her case for a reason of hers or of the clock (she left, she went quiet)."""
    transcript.add(db, vault, case=case, author="system", text=why, now=now)
    case.status, case.outcome, case.closed_at = "closed", outcome, now
    db.add(case)
    events.record(db, "closed", case, now)
    await feed.publish(db, "case_closed", case, now)


async def empty_for_erasure(db: AsyncSession, contact_id: int, now: datetime) -> None:
    """She erased her data: each of her cases stays as a closed, empty case with outcome `erased`."""
    cases = (await db.exec(select(Case).where(Case.contact_id == contact_id))).all()
    for case in cases:
        was_open = case.status in OPEN_STATUSES
        case.contact_id, case.lang, case.district, case.topics, case.note = None, None, None, "[]", None
        if was_open:
            case.status, case.outcome, case.closed_at = "closed", "erased", now
            events.record(db, "closed", case, now)
        else:
            case.outcome = "erased"
        db.add(case)
        await feed.publish(db, "case_closed", case, now)
    if cases:
        await db.flush()
        await db.exec(sa.delete(CaseMessage).where(col(CaseMessage.case_id).in_([c.id for c in cases])))
