"""Tables. Nothing here holds a phone number, a chat id or her words in plain form.

Addresses are sealed (encrypted) and found by a keyed fingerprint; the request log holds a monthly
pseudonym, never an address; sessions hold where she is in the conversation, never what she typed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Times stored in UTC and always read back as aware datetimes (SQLite forgets the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_time(**kwargs: Any) -> Any:
    """A field stored as UTC time."""
    return Field(sa_type=UTCDateTime, **kwargs)


def contact_ref(*, nullable: bool = False, index: bool = True, on_delete: str = "CASCADE") -> Any:
    """A reference to her contact row; by default her rows go when she does."""
    return Field(
        default=None if nullable else ...,
        sa_column_args=[sa.ForeignKey("contacts.id", ondelete=on_delete)],
        nullable=nullable,
        index=index,
    )


class Contact(SQLModel, table=True):
    """A woman on one channel. `fingerprint` finds her; `address` is sealed."""

    __tablename__ = "contacts"

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    fingerprint: str = Field(max_length=64, unique=True)
    address: bytes = Field(sa_type=sa.LargeBinary)
    lang: str | None = Field(default=None, max_length=8)
    district: str | None = Field(default=None, max_length=64)
    script: str = Field(default="cyrillic", max_length=16)
    subscribed: bool = False
    opted_out: bool = False
    reachable: bool = True  # False while she has blocked the bot on Telegram
    safe_hours: str | None = Field(default=None, max_length=11)  # "18-21" Asia/Dushanbe; None: any time
    # Set when a case opens for her; cleared by her next turn once staff have closed it. Most turns are
    # not in a case, and this spares them the look-up (only her turns open cases).
    may_have_case: bool = False
    pseudonym: str = Field(max_length=32)
    pseudonym_month: str = Field(max_length=7)  # "2026-11": the pseudonym is replaced each month
    created_at: datetime = utc_time()


class ConversationState(SQLModel, table=True):
    """Her place in the conversation (a serialised Session), one row per contact."""

    __tablename__ = "sessions"

    contact_id: int = Field(
        sa_column_args=[sa.ForeignKey("contacts.id", ondelete="CASCADE")], primary_key=True
    )
    state: str = Field(sa_type=sa.Text)
    updated_at: datetime = utc_time()


class Delivery(SQLModel, table=True):
    """An inbound message already handled: the same provider message id twice is handled once."""

    __tablename__ = "deliveries"
    __table_args__ = (sa.UniqueConstraint("channel", "provider_id", name="uq_deliveries_provider"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    provider_id: str = Field(max_length=128)
    contact_id: int | None = contact_ref(nullable=True)
    received_at: datetime = utc_time(index=True)


class OutboxMessage(SQLModel, table=True):
    """A message waiting to leave, or sent. Its address and body are sealed.

    status: queued -> sending (claimed by a dispatcher, under a lease) -> sent | failed; a send in flight
    when its dispatcher died is "in doubt": a reply is queued again (a duplicate beats silence), a bulk
    message is not (status in_doubt). Rows of the simulator are never sent (status simulator).
    """

    __tablename__ = "outbox"
    __table_args__ = (
        sa.Index("ix_outbox_pending", "status", "next_attempt_at", "priority", "id"),
        sa.Index("ix_outbox_contact_order", "contact_id", "id"),
        # Only rows still waiting: "is an earlier message of hers waiting?" stays cheap however long
        # her history, and whatever the planner's statistics say.
        sa.Index(
            "ix_outbox_waiting",
            "contact_id",
            "id",
            postgresql_where=sa.text("status IN ('queued', 'sending')"),
            sqlite_where=sa.text("status IN ('queued', 'sending')"),
        ),
        # Claiming walks queued rows in the order they leave and stops at the first few that may: however
        # long the queue (an announcement to 100,000 women), a claim reads a handful of rows, not all.
        sa.Index(
            "ix_outbox_queued",
            "priority",
            "id",
            postgresql_where=sa.text("status = 'queued'"),
            sqlite_where=sa.text("status = 'queued'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int | None = contact_ref(nullable=True)
    channel: str = Field(max_length=16)
    address: bytes = Field(sa_type=sa.LargeBinary)
    body: bytes = Field(sa_type=sa.LargeBinary)  # sealed JSON: the message as the channel sends it
    kind: str = Field(default="reply", max_length=16)  # reply | bulk | command
    priority: int = 0  # lower leaves first: replies before bulk messages
    status: str = Field(default="queued", max_length=16)  # queued | sending | sent | failed
    ephemeral: bool = False  # deleted once sent (the confirmation that her data was erased)
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=200)
    created_at: datetime = utc_time()
    next_attempt_at: datetime = utc_time()
    claimed_by: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = utc_time(default=None)
    held: bool = False  # waiting for her safe hours (next_attempt_at is when they begin)
    in_doubt: bool = False  # was in flight when its dispatcher died (counted; a reply was sent again)
    provider_id: str | None = Field(default=None, max_length=64, index=True)  # Twilio SID / Telegram id
    delivery: str | None = Field(default=None, max_length=16)  # the provider's last word: delivered, ...
    error_code: str | None = Field(default=None, max_length=16)
    sent_at: datetime | None = utc_time(default=None)
    # A bulk row (an announcement) carries no address or body of its own (both b""): the dispatcher reads
    # her contact's sealed address and this text, sealed once for every woman of one language and letters.
    announcement_text_id: int | None = Field(
        default=None,
        sa_column_args=[sa.ForeignKey("announcement_texts.id", ondelete="SET NULL")],
        nullable=True,
    )


class ChatMessage(SQLModel, table=True):
    """A Telegram message id in her chat (hers or the bot's), kept 48 hours so "Clear this chat" works."""

    __tablename__ = "chat_messages"

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = contact_ref()
    message_id: int = Field(sa_type=sa.BigInteger)
    at: datetime = utc_time(index=True)


class RequestLogEntry(SQLModel, table=True):
    """What was asked, never who asked: topic, channel, language, district, hour, monthly pseudonym."""

    __tablename__ = "request_log"

    id: int | None = Field(default=None, primary_key=True)
    hour: datetime = utc_time(index=True)
    topic: str = Field(max_length=64, index=True)
    channel: str = Field(max_length=16)
    lang: str | None = Field(default=None, max_length=8)
    district: str | None = Field(default=None, max_length=64)
    pseudonym: str = Field(max_length=32)
