"""Browser login sessions: the cookie holds a random token, the database only its digest.

Sessions live in the database, not in a process, so any worker can tell who is logged in and a logout or a
disabled account takes effect everywhere at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.staff import tokens
from bot.store import Staff, StaffSession

SESSION_LIFETIME = timedelta(hours=12)  # one working day; a forgotten browser does not stay logged in


@dataclass(frozen=True)
class NewSession:
    """What the browser is given once: the cookie's token and the session's form token."""

    token: str
    csrf: str
    expires_at: datetime


@dataclass(frozen=True)
class Login:
    """A logged-in member of staff and the form token their pages must send back."""

    staff: Staff
    csrf: str
    expires_at: datetime


async def start_session(
    db: AsyncSession, *, staff: Staff, now: datetime, lifetime: timedelta = SESSION_LIFETIME
) -> NewSession:
    """A new login session for the account (expired sessions of anyone are cleared on the way)."""
    assert staff.id is not None
    await purge_expired(db, now=now)
    token, csrf = tokens.new_secret(), tokens.new_secret()
    expires_at = now + lifetime
    row = StaffSession(
        token_hash=tokens.digest(token), staff_id=staff.id, csrf=csrf, created_at=now, expires_at=expires_at
    )
    db.add(row)
    await db.flush()
    return NewSession(token=token, csrf=csrf, expires_at=expires_at)


async def find_session(db: AsyncSession, *, token: str, now: datetime) -> Login | None:
    """Who holds this cookie token, if it belongs to a live session of an enabled account."""
    if not token:
        return None
    query = (
        select(StaffSession, Staff)
        .join(Staff, col(Staff.id) == col(StaffSession.staff_id))
        .where(
            StaffSession.token_hash == tokens.digest(token),
            col(StaffSession.expires_at) > now,
            col(Staff.disabled).is_(False),
        )
    )
    row = (await db.exec(query)).first()
    if row is None:
        return None
    session, staff = row
    return Login(staff=staff, csrf=session.csrf, expires_at=session.expires_at)


async def end_session(db: AsyncSession, *, token: str) -> None:
    """End the session this cookie token belongs to (nothing if none)."""
    await db.exec(sa.delete(StaffSession).where(col(StaffSession.token_hash) == tokens.digest(token)))


async def purge_expired(db: AsyncSession, *, now: datetime) -> None:
    """Delete sessions past their expiry: they can never be used again."""
    await db.exec(sa.delete(StaffSession).where(col(StaffSession.expires_at) <= now))
