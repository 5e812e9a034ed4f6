"""Staff accounts: add, list, set a password, disable, API tokens, and telling who someone is."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Literal, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.staff import tokens
from bot.staff.errors import AccountDisabled, BadName, BadRole, NameTaken, UnknownStaff
from bot.staff.passwords import hash_password, verify_password, waste_time
from bot.store import ROLES, Staff, StaffSession

Role = Literal["counsellor", "supervisor", "coordinator", "admin"]
MAX_NAME = 64


def normalise_name(name: str) -> str:
    """A name as stored and looked up: NFC, without surrounding spaces (typing it twice must match)."""
    return unicodedata.normalize("NFC", name).strip()


def check_role(role: str) -> Role:
    """The role, if Hamroh knows it (BadRole otherwise)."""
    if role not in ROLES:
        raise BadRole(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return cast(Role, role)


async def add_staff(db: AsyncSession, *, name: str, role: str, password: str, now: datetime) -> Staff:
    """A new account (NameTaken, BadName, BadRole or WeakPassword if it cannot be made)."""
    name = _valid_name(name)
    check_role(role)
    password_hash = await hash_password(password)
    if await find_staff(db, name=name) is not None:
        raise NameTaken(name)
    staff = Staff(name=name, role=role, password_hash=password_hash, created_at=now)
    db.add(staff)
    try:
        await db.flush()
    except IntegrityError:  # added by another process since we looked; the unit of work is void anyway
        raise NameTaken(name) from None
    return staff


async def list_staff(db: AsyncSession) -> list[Staff]:
    """Every account, by name."""
    return list((await db.exec(select(Staff).order_by(col(Staff.name)))).all())


async def find_staff(db: AsyncSession, *, name: str) -> Staff | None:
    """The account with this name, if any."""
    return (await db.exec(select(Staff).where(Staff.name == normalise_name(name)))).first()


async def get_staff(db: AsyncSession, *, name: str) -> Staff:
    """The account with this name (UnknownStaff otherwise)."""
    staff = await find_staff(db, name=name)
    if staff is None:
        raise UnknownStaff(normalise_name(name))
    return staff


async def set_password(db: AsyncSession, *, name: str, password: str) -> Staff:
    """Give an account a new password; its browser sessions end, since the old password may have leaked."""
    password_hash = await hash_password(password)
    staff = await get_staff(db, name=name)
    staff.password_hash = password_hash
    await end_sessions_of(db, staff_id=_id(staff))
    db.add(staff)
    return staff


async def disable_staff(db: AsyncSession, *, name: str) -> Staff:
    """Disable an account: it can no longer log in, its sessions end and its API token stops working."""
    staff = await get_staff(db, name=name)
    staff.disabled = True
    staff.token_hash = None
    staff.token_issued_at = None
    await end_sessions_of(db, staff_id=_id(staff))
    db.add(staff)
    return staff


async def issue_token(db: AsyncSession, *, name: str, now: datetime) -> str:
    """A new API token for the account, replacing any earlier one. Only its digest is kept: show it once."""
    staff = await get_staff(db, name=name)
    if staff.disabled:
        raise AccountDisabled(staff.name)
    token = tokens.new_api_token()
    staff.token_hash = tokens.digest(token)
    staff.token_issued_at = now
    db.add(staff)
    await db.flush()
    return token


async def revoke_token(db: AsyncSession, *, name: str) -> bool:
    """End the account's API token; whether it had one."""
    staff = await get_staff(db, name=name)
    had = staff.token_hash is not None
    staff.token_hash = None
    staff.token_issued_at = None
    db.add(staff)
    return had


async def authenticate(db: AsyncSession, *, name: str, password: str) -> Staff | None:
    """The account if the name and password match and it is not disabled; None otherwise.

    An unknown name costs the same time as a wrong password, so timing does not tell which names exist.
    A hash made with older parameters is made again now, while the password is at hand.
    """
    staff = await find_staff(db, name=name)
    if staff is None:
        await waste_time(password)
        return None
    matches, stale = await verify_password(staff.password_hash, password)
    if not matches or staff.disabled:
        return None
    if stale:
        staff.password_hash = await hash_password(password)
        db.add(staff)
    return staff


async def by_token(db: AsyncSession, *, token: str) -> Staff | None:
    """The enabled account whose current API token this is, if any."""
    if not token:
        return None
    query = select(Staff).where(Staff.token_hash == tokens.digest(token), col(Staff.disabled).is_(False))
    return (await db.exec(query)).first()


async def end_sessions_of(db: AsyncSession, *, staff_id: int) -> None:
    """End every browser session of one account."""
    await db.exec(sa.delete(StaffSession).where(col(StaffSession.staff_id) == staff_id))


def _valid_name(name: str) -> str:
    name = normalise_name(name)
    if not name:
        raise BadName("the name is empty")
    if len(name) > MAX_NAME:
        raise BadName(f"the name must have at most {MAX_NAME} characters")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise BadName("the name holds a control character")
    return name


def _id(staff: Staff) -> int:
    assert staff.id is not None  # loaded from the database
    return staff.id
