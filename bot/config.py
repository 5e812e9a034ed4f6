"""Settings from the environment (prefix HAMROH_, `.env` read too). Secrets are never printed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class ConfigError(Exception):
    """Settings that cannot be used; the message says which and why."""


class Settings(BaseSettings):
    """Every setting of Hamroh. In production, keys must come from the environment."""

    model_config = SettingsConfigDict(env_prefix="HAMROH_", env_file=".env", extra="ignore")

    env: Literal["development", "production"] = "development"
    database_url: str = f"sqlite:///{ROOT / 'var' / 'hamroh.db'}"
    var_dir: Path = ROOT / "var"
    flows_dir: Path = ROOT / "flows"
    locales_dir: Path = ROOT / "locales"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    encryption_key: SecretStr | None = None  # Fernet key(s), comma-separated: newest first
    hash_key: SecretStr | None = None  # key of the keyed hash that finds a contact by address
    idle_reset_days: float = Field(default=14, gt=0)
    sms_segment_budget: int = Field(default=2, ge=1, le=10)
    simulator: bool | None = None  # default: on in development, off in production
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _production_needs_keys(self) -> Settings:
        if self.env == "production":
            missing = [n for n in ("encryption_key", "hash_key") if getattr(self, n) is None]
            if missing:
                names = ", ".join(f"HAMROH_{n.upper()}" for n in missing)
                raise ValueError(f"production needs {names} in the environment (never a generated key file)")
            if self.simulator:
                raise ValueError("the simulator cannot be on in production")
        return self

    @property
    def simulator_on(self) -> bool:
        """Whether the web and terminal simulators may create records."""
        return self.env == "development" if self.simulator is None else self.simulator

    @property
    def idle_reset(self) -> timedelta:
        """How long she may be away before the conversation starts again at the menu."""
        return timedelta(days=self.idle_reset_days)


def load_settings() -> Settings:
    """Read settings, turning validation errors into one clear ConfigError (secrets never shown)."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(reasons) from None
