"""Tables of the staff side: accounts, login sessions, login throttling, and the audit log."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from bot.store.tables import utc_time

ROLES = ("counsellor", "supervisor", "coordinator", "admin")


class Staff(SQLModel, table=True):
    """A person of the deploying organisation. Passwords and API tokens are stored hashed only."""

    __tablename__ = "staff"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    role: str = Field(max_length=16)  # counsellor | supervisor | coordinator | admin
    password_hash: str = Field(max_length=200)
    token_hash: str | None = Field(default=None, max_length=64, unique=True)  # SHA-256 of the API token
    token_issued_at: datetime | None = utc_time(default=None)
    disabled: bool = False
    created_at: datetime = utc_time()


class StaffSession(SQLModel, table=True):
    """A browser login: the cookie holds a random token; only its hash is kept here."""

    __tablename__ = "staff_sessions"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    staff_id: int = Field(sa_column_args=[sa.ForeignKey("staff.id", ondelete="CASCADE")], index=True)
    csrf: str = Field(max_length=64)  # the form token of this session
    created_at: datetime = utc_time()
    expires_at: datetime = utc_time(index=True)


class LoginThrottle(SQLModel, table=True):
    """Failed logins per key (a hash of the name, or of the client address): shared by every worker."""

    __tablename__ = "login_throttle"

    key: str = Field(max_length=64, primary_key=True)
    failures: int = 0
    window_start: datetime = utc_time()
    locked_until: datetime | None = utc_time(default=None)


class AuditEntry(SQLModel, table=True):
    """Who did what to which case (viewed, claimed, wrote, transferred, closed, unmasked, send_now...)."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = utc_time(index=True)
    staff_id: int | None = Field(
        default=None, sa_column_args=[sa.ForeignKey("staff.id", ondelete="SET NULL")], nullable=True
    )
    staff_name: str = Field(max_length=64)  # kept when the account is gone
    action: str = Field(max_length=32)
    case_id: int | None = Field(default=None, index=True)  # no foreign key: the entry outlives the case
    detail: str = Field(default="", max_length=200)  # never her words or her address
