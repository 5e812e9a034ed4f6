"""Addresses at rest: normalised, sealed, found by a keyed hash; keys refused when weak or missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, load_settings
from bot.store.crypto import AddressError, Vault, development_keys, make_vault, mask, normalise_address


@pytest.mark.parametrize(
    ("channel", "raw", "expected"),
    [
        ("sms", "+992 90 123 45 67", "+992901234567"),
        ("sms", "00992901234567", "+992901234567"),
        ("sms", "992-90-123-45-67", "+992901234567"),
        ("telegram", "123456789", "tg:123456789"),
        ("telegram", "tg:-100123", "tg:-100123"),
    ],
)
def test_addresses_are_normalised(channel: str, raw: str, expected: str) -> None:
    assert normalise_address(channel, raw) == expected


@pytest.mark.parametrize("raw", ["", "hello", "+12", "<script>", "1" * 30, "tg:abc"])
def test_what_is_not_an_address_is_refused(raw: str) -> None:
    with pytest.raises(AddressError):
        normalise_address("sms", raw)


def test_a_sealed_address_opens_again_and_never_seals_the_same_way_twice(vault: Vault) -> None:
    first, second = vault.seal("+992901234567"), vault.seal("+992901234567")
    assert first != second
    assert b"992" not in first
    assert vault.open(first) == "+992901234567"
    assert vault.fingerprint("+992901234567") == vault.fingerprint("+992901234567")
    assert vault.fingerprint("+992901234567") != vault.fingerprint("+992901234568")
    assert mask("+992901234567") == "+992…67"


def test_an_old_key_still_opens_what_it_sealed_and_a_stranger_cannot() -> None:
    from cryptography.fernet import Fernet

    old_key = Fernet.generate_key().decode()
    sealed = make_vault(old_key, "h" * 40).seal("tg:1")
    rotated = make_vault(f"{Fernet.generate_key().decode()},{old_key}", "h" * 40)
    assert rotated.open(sealed) == "tg:1"
    with pytest.raises(ValueError, match="cannot decrypt"):
        make_vault(Fernet.generate_key().decode(), "h" * 40).open(sealed)


def test_development_keys_are_made_once_and_kept_private(tmp_path: Path) -> None:
    first = development_keys(tmp_path)
    assert development_keys(tmp_path) == first
    assert (tmp_path / "dev-keys.json").stat().st_mode & 0o077 == 0


def test_production_refuses_to_start_without_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAMROH_ENV", "production")
    monkeypatch.delenv("HAMROH_ENCRYPTION_KEY", raising=False)
    monkeypatch.delenv("HAMROH_HASH_KEY", raising=False)
    with pytest.raises(ConfigError, match="HAMROH_ENCRYPTION_KEY, HAMROH_HASH_KEY"):
        load_settings()


def test_secrets_are_never_printed() -> None:
    settings = Settings(
        encryption_key="Zq9-encryption-value",
        hash_key="Zq9-hash-value-" * 3,
        telegram_token="123456:Zq9-token-value",
        telegram_secret="Zq9-secret-value",
        twilio_auth_token="Zq9-auth-value",
    )
    assert "Zq9" not in repr(settings)
    assert "Zq9" not in str(settings.model_dump())
