"""Tables of the counsellor side: cases, their transcripts, and anonymised case events.

A case points to her contact until she erases her data; then it stays as a closed, empty case
(outcome `erased`). Transcript bodies are sealed with the vault. Case events hold no contact and no
pseudonym: they are what reports read, and they survive the purge of cases.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from bot.store.tables import contact_ref, utc_time

OPEN_STATUSES = ("waiting", "active")


class Case(SQLModel, table=True):
    """A conversation handed to a person: waiting -> active (claimed) -> closed with an outcome."""

    __tablename__ = "cases"
    __table_args__ = (
        sa.Index("ix_cases_queue_order", "status", "priority_rank", "waiting_since"),
        # One open case per woman, whatever races: a second escalation raises the first instead.
        sa.Index(
            "uq_cases_one_open",
            "contact_id",
            unique=True,
            postgresql_where=sa.text("status IN ('waiting', 'active')"),
            sqlite_where=sa.text("status IN ('waiting', 'active')"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int | None = contact_ref(nullable=True, index=False, on_delete="SET NULL")
    channel: str = Field(max_length=16)
    lang: str | None = Field(default=None, max_length=8)
    district: str | None = Field(default=None, max_length=64)
    queue: str = Field(max_length=32)
    priority: str = Field(default="normal", max_length=8)  # urgent | normal
    priority_rank: int = 1  # 0 urgent, 1 normal: the queue's order, urgent first
    category: str = Field(max_length=32)  # a triage category, or why she asked (legal, emotional_support...)
    status: str = Field(default="waiting", max_length=16)  # waiting | active | closed
    counsellor_id: int | None = Field(
        default=None, sa_column_args=[sa.ForeignKey("staff.id", ondelete="SET NULL")], nullable=True
    )
    topics: str = Field(default="[]", sa_type=sa.Text)  # JSON list of topic ids she opened before asking
    opened_at: datetime = utc_time()
    waiting_since: datetime = utc_time()  # reset when returned to the queue or transferred to a queue
    claimed_at: datetime | None = utc_time(default=None)
    closed_at: datetime | None = utc_time(default=None, index=True)
    outcome: str | None = Field(default=None, max_length=16)
    note: bytes | None = Field(default=None, sa_type=sa.LargeBinary)  # sealed closing note
    last_her_at: datetime | None = utc_time(default=None)
    last_staff_at: datetime | None = utc_time(default=None)
    alerted_at: datetime | None = utc_time(default=None)  # the last alert about this case
    supervisors_alerted: bool = False
    acknowledged: bool = False  # she was told "a counsellor will write soon" (once per case)


class CaseMessage(SQLModel, table=True):
    """One line of a case's transcript: hers, a counsellor's, the bot's, or an internal note (sealed)."""

    __tablename__ = "case_messages"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(sa_column_args=[sa.ForeignKey("cases.id", ondelete="CASCADE")], index=True)
    author: str = Field(max_length=8)  # her | staff | bot | note | system
    staff_id: int | None = Field(
        default=None, sa_column_args=[sa.ForeignKey("staff.id", ondelete="SET NULL")], nullable=True
    )
    body: bytes = Field(sa_type=sa.LargeBinary)  # sealed JSON: {"text": ..., "media": {...}?}
    at: datetime = utc_time()


class CaseEvent(SQLModel, table=True):
    """What happened to a case, with no way back to her: the coordinators' reports read these."""

    __tablename__ = "case_events"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # opened | raised | claimed | transferred | returned | closed
    hour: datetime = utc_time(index=True)
    priority: str = Field(max_length=8)
    queue: str = Field(max_length=32)
    category: str = Field(max_length=32)
    channel: str = Field(max_length=16)
    lang: str | None = Field(default=None, max_length=8)
    district: str | None = Field(default=None, max_length=64)
    outcome: str | None = Field(default=None, max_length=16)
    seconds_to_claim: int | None = None
    seconds_to_close: int | None = None
