"""Password hashing with Argon2id; hashes made with older parameters are replaced at the next login."""

from __future__ import annotations

import asyncio
from functools import cache
from typing import TYPE_CHECKING

from bot.staff.errors import WeakPassword

if TYPE_CHECKING:
    from argon2 import PasswordHasher

MIN_LENGTH = 12
MAX_LENGTH = 1024  # Argon2 takes any length, but hashing a megabyte on every attempt is a cheap attack


def check_strength(password: str) -> None:
    """WeakPassword unless the password has at least MIN_LENGTH characters (and at most MAX_LENGTH)."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"the password must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"the password must have at most {MAX_LENGTH} characters")


async def hash_password(password: str) -> str:
    """The Argon2id hash of an acceptable password (WeakPassword otherwise).

    Hashing takes tens of milliseconds of CPU on purpose; a thread keeps the event loop answering meanwhile.
    """
    check_strength(password)
    return await asyncio.to_thread(hasher().hash, password)


async def verify_password(stored: str, password: str) -> tuple[bool, bool]:
    """Whether the password matches the stored hash, and whether that hash should be made again."""
    if len(password) > MAX_LENGTH:
        return False, False
    return await asyncio.to_thread(_verify, stored, password)


async def waste_time(password: str) -> None:
    """Verify against a hash nobody has, so that an unknown name costs as much time as a known one."""
    await verify_password(_dummy_hash(), password)


@cache
def hasher() -> PasswordHasher:
    """Argon2id with RFC 9106's low-memory profile (the library's default).

    Raising the parameters later is safe: every stored hash records its own, and a login with a hash made
    with older ones makes it again. (Imported on first use: the `hamroh` command starts faster.)
    """
    from argon2 import PasswordHasher

    return PasswordHasher()


def _verify(stored: str, password: str) -> tuple[bool, bool]:
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False, False
    return True, hasher().check_needs_rehash(stored)


@cache
def _dummy_hash() -> str:
    return hasher().hash("no account has this password; it only makes a refusal take the usual time")
