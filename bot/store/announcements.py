"""Tables of announcements: what she subscribed to, what coordinators wrote, and who it went to.

Recipients and their outcomes live here, not in the outbox: the outbox forgets sent rows after its
retention, and a coordinator's counts must not change when it does.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from bot.store.tables import contact_ref, utc_time

# What she may ask news about. "All" is every one of them, in her district (everywhere while unknown).
NEWS_TOPICS = ("training", "legal_aid", "health", "events")


class Subscription(SQLModel, table=True):
    """One topic of news she asked for. Her district is her contact's: changing it narrows the news."""

    __tablename__ = "subscriptions"

    contact_id: int = Field(
        sa_column_args=[sa.ForeignKey("contacts.id", ondelete="CASCADE")], primary_key=True
    )
    topic: str = Field(max_length=16, primary_key=True, index=True)
    created_at: datetime = utc_time()


class Announcement(SQLModel, table=True):
    """A message a coordinator writes once, in Tajik and Russian, for the women who asked for news.

    status: draft -> (approved) -> scheduled -> sending -> sent, or cancelled at any point before sent.
    """

    __tablename__ = "announcements"

    id: int | None = Field(default=None, primary_key=True)
    status: str = Field(default="draft", max_length=16, index=True)
    text_tg: str = Field(sa_type=sa.Text)
    text_ru: str = Field(sa_type=sa.Text)
    audience: str = Field(sa_type=sa.Text)  # JSON of the filters, as the coordinator chose them
    audience_size: int = 0  # counted when written, and again when enqueued
    created_by: int | None = Field(
        default=None, sa_column_args=[sa.ForeignKey("staff.id", ondelete="SET NULL")], nullable=True
    )
    approved_by: int | None = Field(
        default=None, sa_column_args=[sa.ForeignKey("staff.id", ondelete="SET NULL")], nullable=True
    )
    send_at: datetime | None = utc_time(default=None, index=True)
    override_reason: str | None = Field(default=None, max_length=200)  # sent inside quiet hours: why
    created_at: datetime = utc_time()
    enqueued_at: datetime | None = utc_time(default=None)
    cancelled_at: datetime | None = utc_time(default=None)


class AnnouncementText(SQLModel, table=True):
    """The announcement as it leaves for one language and letters choice, sealed once for all of them."""

    __tablename__ = "announcement_texts"
    __table_args__ = (sa.UniqueConstraint("announcement_id", "lang", "script", name="uq_announcement_texts"),)

    id: int | None = Field(default=None, primary_key=True)
    announcement_id: int = Field(
        sa_column_args=[sa.ForeignKey("announcements.id", ondelete="CASCADE")], index=True
    )
    lang: str = Field(max_length=8)
    script: str = Field(max_length=16)
    body: bytes = Field(sa_type=sa.LargeBinary)  # sealed JSON, as the channel sends it


class AnnouncementRecipient(SQLModel, table=True):
    """One woman of one announcement, once (the unique key), and what became of her message.

    outcome: queued | held | sent | delivered | failed | blocked | in_doubt | cancelled. When she erases
    her data the row stays, counted, but no longer points to her.
    """

    __tablename__ = "announcement_recipients"
    __table_args__ = (
        sa.UniqueConstraint("announcement_id", "contact_id", name="uq_announcement_recipient"),
        sa.Index("ix_announcement_recipients_outcome", "announcement_id", "outcome"),
    )

    id: int | None = Field(default=None, primary_key=True)
    announcement_id: int = Field(sa_column_args=[sa.ForeignKey("announcements.id", ondelete="CASCADE")])
    contact_id: int | None = contact_ref(nullable=True, index=False, on_delete="SET NULL")
    outbox_id: int | None = Field(default=None, index=True)  # no foreign key: the outbox forgets
    channel: str = Field(max_length=16)
    lang: str = Field(max_length=8)
    outcome: str = Field(default="queued", max_length=16)
    updated_at: datetime = utc_time()
