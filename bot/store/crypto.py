"""Addresses at rest: normalised, encrypted, and found again by a keyed hash.

A phone number or chat id is never stored in plain form. `Vault.seal` encrypts it (Fernet: AES with an
HMAC); `Vault.fingerprint` is an HMAC-SHA256 under a separate key, so a contact can be looked up without
decrypting every row, and nobody holding only the database can test guesses.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

log = logging.getLogger(__name__)
_PHONE = re.compile(r"^\+?[0-9]{6,15}$")
_TG = re.compile(r"^tg:-?[0-9]{1,20}$")


class AddressError(ValueError):
    """An address that is neither a phone number nor a Telegram chat id."""


def normalise_address(channel: str, raw: str) -> str:
    """E.164 for SMS ("+992..."), "tg:<id>" for Telegram; AddressError otherwise."""
    if channel == "telegram":
        value = re.sub(r"\s", "", raw)
        value = value if value.startswith("tg:") else f"tg:{value}"
        if not _TG.match(value):
            raise AddressError("not a Telegram chat id")
        return value
    value = re.sub(r"[\s().\-]", "", raw.strip())
    if value.startswith("00"):
        value = "+" + value[2:]
    if not _PHONE.match(value):
        raise AddressError("not a phone number")
    return value if value.startswith("+") else "+" + value


def mask(address: str) -> str:
    """An address as staff may see it: the last digits only."""
    return f"{address[:4]}…{address[-2:]}" if len(address) > 6 else "…"


@dataclass(frozen=True)
class Vault:
    """Encrypts addresses and computes their lookup fingerprints."""

    fernet: MultiFernet
    hash_key: bytes

    def seal(self, plain: str) -> bytes:
        """Encrypt a value (random IV: the same address seals differently each time)."""
        return self.fernet.encrypt(plain.encode("utf-8"))

    def open(self, sealed: bytes) -> str:
        """Decrypt a value sealed by `seal` (with the current or an older key)."""
        try:
            return self.fernet.decrypt(sealed).decode("utf-8")
        except InvalidToken as exc:
            raise ValueError("cannot decrypt: wrong key or damaged value") from exc

    def fingerprint(self, address: str) -> str:
        """The keyed hash that finds a contact by address."""
        return hmac.new(self.hash_key, address.encode("utf-8"), hashlib.sha256).hexdigest()


def make_vault(encryption_keys: str, hash_key: str) -> Vault:
    """A Vault from keys as given in the environment (Fernet keys comma-separated, newest first)."""
    fernets = [Fernet(k.strip().encode("ascii")) for k in encryption_keys.split(",") if k.strip()]
    if not fernets:
        raise ValueError("no encryption key")
    if len(hash_key) < 32:
        raise ValueError("the hash key must be at least 32 characters")
    return Vault(MultiFernet(fernets), hash_key.encode("utf-8"))


def development_keys(var_dir: Path) -> tuple[str, str]:
    """Keys for development only, generated once into var/ (production refuses to start without its own)."""
    path = var_dir / "dev-keys.json"
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
        return str(data["encryption_key"]), str(data["hash_key"])
    var_dir.mkdir(parents=True, exist_ok=True)
    keys = {"encryption_key": Fernet.generate_key().decode("ascii"), "hash_key": secrets.token_urlsafe(48)}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(keys, handle)
    log.info("generated development keys in %s", path)
    return keys["encryption_key"], keys["hash_key"]
