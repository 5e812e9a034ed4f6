"""Anonymised case events: what the coordinators' reports read once cases and transcripts are purged."""

from __future__ import annotations

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.store import Case, CaseEvent


def record(db: AsyncSession, kind: str, case: Case, now: datetime) -> CaseEvent:
    """An event row with no contact and no pseudonym: hour, priority, queue, category, channel, lang,
    district, outcome, and the seconds it took to claim and to close."""
    claim_seconds = close_seconds = None
    if kind == "claimed" and case.claimed_at is not None:
        claim_seconds = int((case.claimed_at - case.waiting_since).total_seconds())
    if kind == "closed":
        close_seconds = int((now - case.opened_at).total_seconds())
        if case.claimed_at is not None:
            claim_seconds = int((case.claimed_at - case.opened_at).total_seconds())
    event = CaseEvent(
        kind=kind,
        hour=now.replace(minute=0, second=0, microsecond=0),
        priority=case.priority,
        queue=case.queue,
        category=case.category,
        channel=case.channel,
        lang=case.lang,
        district=case.district,
        outcome=case.outcome if kind == "closed" else None,
        seconds_to_claim=claim_seconds,
        seconds_to_close=close_seconds,
    )
    db.add(event)
    return event
