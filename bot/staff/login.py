"""Logging in and out of the staff pages: throttle, check the password, start or end a session, audit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.staff import audit, throttle
from bot.staff.accounts import authenticate, normalise_name
from bot.staff.sessions import end_session, find_session, start_session
from bot.store import Staff


@dataclass(frozen=True)
class LoggedIn:
    """The password matched: a new session whose token goes into the cookie."""

    staff: Staff
    token: str
    csrf: str
    expires_at: datetime


@dataclass(frozen=True)
class Refused:
    """Wrong name or wrong password (which one is never said), or a disabled account."""


@dataclass(frozen=True)
class Throttled:
    """Too many failures lately for this name or from this address: refused without checking."""

    until: datetime


LoginResult = LoggedIn | Refused | Throttled


async def log_in(
    db: AsyncSession,
    *,
    name: str,
    password: str,
    address: str,
    keyed_hash: Callable[[str], str],
    now: datetime,
    rules: throttle.Rules = throttle.RULES,
) -> LoginResult:
    """One login attempt from a client address. Failures are recorded, so commit whatever this returns.

    While a name or an address is locked even the right password is refused: otherwise the lock would only
    slow guessing down, not stop it.
    """
    keys = throttle.keys_for(keyed_hash, name=normalise_name(name), address=address)
    until = await throttle.locked_until(db, keys=keys.all(), now=now)
    if until is not None:
        return Throttled(until=until)
    staff = await authenticate(db, name=name, password=password)
    if staff is None:
        await throttle.record_failure(db, keys=keys, now=now, rules=rules)
        return Refused()
    await throttle.clear(db, key=keys.name)
    session = await start_session(db, staff=staff, now=now)
    await audit.record(db, staff=staff, action="login", now=now)
    return LoggedIn(staff=staff, token=session.token, csrf=session.csrf, expires_at=session.expires_at)


async def log_out(db: AsyncSession, *, token: str, now: datetime) -> None:
    """End the session this cookie token belongs to, and say so in the audit log."""
    login = await find_session(db, token=token, now=now)
    await end_session(db, token=token)
    if login is not None:
        await audit.record(db, staff=login.staff, action="logout", now=now)
