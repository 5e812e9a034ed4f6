"""Tables of training: courses a coordinator manages, and the women enrolled or waiting for a place."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from bot.store.tables import contact_ref, utc_time

# What a training partner may ask for, each named on her consent screen. Nothing else is ever shared.
PARTNER_FIELDS = ("name", "phone")

ENROLLED = "enrolled"
WAITING = "waiting"
CANCELLED = "cancelled"


class CourseRow(SQLModel, table=True):
    """A training course, listed to women of its district (or to all when district is empty)."""

    __tablename__ = "courses"

    id: int | None = Field(default=None, primary_key=True)
    title_tg: str = Field(max_length=200)
    title_ru: str = Field(max_length=200)
    title_en: str = Field(default="", max_length=200)
    description_tg: str = Field(default="", max_length=1000)
    description_ru: str = Field(default="", max_length=1000)
    district: str | None = Field(default=None, max_length=64, index=True)
    place: str = Field(default="", max_length=200)  # where it meets, as written on the page
    starts_on: date | None = None
    ends_on: date | None = None
    capacity: int | None = None  # None: no limit
    partner: str = Field(default="", max_length=200)  # the organisation that runs it
    partner_fields: str = Field(default="phone", max_length=64)  # comma-separated, from PARTNER_FIELDS
    example: bool = False  # a demo course seeded by `make run`, never in production
    active: bool = True
    created_at: datetime = utc_time()
    updated_at: datetime | None = utc_time(default=None)


class Enrolment(SQLModel, table=True):
    """One woman on one course: enrolled, waiting for a place (oldest first), or cancelled.

    `details` is sealed JSON of exactly the fields she agreed to share with the partner, nothing more.
    """

    __tablename__ = "enrolments"
    __table_args__ = (
        sa.UniqueConstraint("course_id", "contact_id", name="uq_enrolments_course_contact"),
        sa.Index("ix_enrolments_course_status", "course_id", "status", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    course_id: int = Field(sa_column_args=[sa.ForeignKey("courses.id", ondelete="CASCADE")])
    contact_id: int = contact_ref()
    status: str = Field(max_length=16)  # enrolled | waiting | cancelled
    details: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    created_at: datetime = utc_time()
    updated_at: datetime = utc_time()
    reminded_at: datetime | None = utc_time(default=None)
