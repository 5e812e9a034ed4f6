"""Settings from the environment (prefix HAMROH_, `.env` read too). Secrets are never printed."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
PRICE = re.compile(r"(\d{1,6}(?:\.\d{1,4})?)\s+([A-Z]{3})")  # a price per SMS segment: "0.35 TJS"


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
    max_request_bytes: int = Field(default=64 * 1024, ge=1024)  # webhook bodies above this get 413
    # A webhook's turn ends by then or is answered 503 (rolled back, delivered again): below Twilio's 15 s
    # wait; it also bounds every database command, so a database that hangs never holds a webhook.
    turn_timeout_seconds: float = Field(default=8, ge=0.5, lt=15)
    sms_price_per_segment: str | None = None  # "0.35 TJS": shown to counsellors while they type an SMS
    # the greeting says Hamroh is free only when the deployment says so (SMS may cost her)
    service_is_free: bool = False

    # Facts marked `verify: true` need the deploying organisation's confirmation before production.
    confirmations_file: Path | None = None  # YAML list written by `hamroh facts confirm` (see README)
    allow_unconfirmed: bool = False  # a pilot: unconfirmed facts are warnings, logged at start, not errors

    # Channels: a channel whose credentials are absent is off.
    public_url: str | None = Field(
        default=None, pattern=r"^https?://[^\s]+$"
    )  # what Telegram and Twilio call
    telegram_token: SecretStr | None = None
    telegram_secret: SecretStr | None = None  # X-Telegram-Bot-Api-Secret-Token
    telegram_api_url: str = "https://api.telegram.org"
    twilio_account_sid: str | None = Field(default=None, pattern=r"^AC[0-9a-fA-F]{32}$")
    twilio_auth_token: SecretStr | None = None
    twilio_from: str | None = None  # the sender number, E.164
    twilio_messaging_service_sid: str | None = Field(default=None, pattern=r"^MG[0-9a-fA-F]{32}$")
    twilio_api_url: str = "https://api.twilio.com"
    twilio_timeout_seconds: float = Field(default=10, gt=0)  # the SDK's async client has none of its own

    # The dispatcher.
    dispatch_in_process: bool = True  # `hamroh serve` runs it; `hamroh dispatch` runs it alone
    dispatch_lease_seconds: float = Field(default=60, ge=5)
    telegram_messages_per_second: float = Field(default=30, gt=0)
    telegram_chat_messages_per_second: float = Field(default=1, gt=0)
    twilio_segments_per_second: float = Field(default=1, gt=0)
    # PostgreSQL: an active sender that freezes or is cut off loses the sender lock after this long, and a
    # waiting dispatcher takes over; it renews the lock four times as often.
    dispatch_sender_hold_seconds: float = Field(default=10, ge=1, le=600)

    # Counsellors: hours (Asia/Dushanbe) and the clocks of the case jobs.
    service_hours: str = "always"  # e.g. "mon-fri 09-18, sat 10-14"; cases still open outside them
    staff_telegram_chat: str | None = Field(default=None, pattern=r"^-?[0-9]{1,20}$")  # hears of urgent cases
    urgent_unclaimed_minutes: float = Field(default=5, gt=0)  # then alerted again and raised to supervisors
    active_silent_minutes: float = Field(default=30, gt=0)  # no staff message: alerted; twice that: requeued
    waiting_abandoned_hours: float = Field(default=72, gt=0)  # she has not written: the case closes
    transcript_days: float = Field(default=30, gt=0)  # closed cases and their transcripts are purged after
    jobs_interval_seconds: float = Field(default=30, ge=1)
    # Training: each woman holding a place is reminded this long before her course begins (09:00 Dushanbe
    # time on its first day).
    course_reminder_hours: float = Field(default=24, gt=0, le=24 * 14)

    # Announcements: no send inside quiet hours (Asia/Dushanbe; "" for none) unless a reason is given,
    # and, when asked for, a second coordinator approves each one before it can be sent.
    announce_quiet_hours: str = "21:00-08:00"
    announce_needs_approval: bool = False

    # Retention (see README, Privacy): how long what is kept about her stays.
    outbox_body_minutes: float = Field(default=0, ge=0, le=1440)  # a sent message's text and address
    outbox_days: float = Field(default=3, gt=0, le=90)  # then the sent message row itself
    delivery_days: float = Field(default=3, ge=1, le=90)  # her message ids (Telegram redelivers up to 24 h)
    session_history_hours: float = Field(default=24, gt=0, le=24 * 90)  # the way back through the menus
    inactive_days: float = Field(default=365, ge=30, le=3650)  # then she is erased, without a message

    # Reports: a count under this is hidden (with others, so that totals cannot give it back).
    report_min_cell: int = Field(default=5, ge=2, le=100)

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

    @model_validator(mode="after")
    def _retention_is_ordered(self) -> Settings:
        if self.outbox_body_minutes > self.outbox_days * 24 * 60:
            raise ValueError("HAMROH_OUTBOX_BODY_MINUTES cannot be longer than HAMROH_OUTBOX_DAYS")
        if self.inactive_days < max(self.outbox_days, self.delivery_days, self.transcript_days):
            raise ValueError(
                "HAMROH_INACTIVE_DAYS must be at least HAMROH_OUTBOX_DAYS, HAMROH_DELIVERY_DAYS and "
                "HAMROH_TRANSCRIPT_DAYS"
            )
        return self

    @field_validator("sms_price_per_segment")
    @classmethod
    def _price_is_a_price(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not PRICE.fullmatch(value.strip()):
            raise ValueError('HAMROH_SMS_PRICE_PER_SEGMENT is a number then a currency code, e.g. "0.35 TJS"')
        return " ".join(value.split())

    @field_validator("service_hours")
    @classmethod
    def _hours_are_readable(cls, value: str) -> str:
        from bot.conversation.hours import HoursError, parse

        try:
            parse(value)
        except HoursError as exc:
            raise ValueError(f"HAMROH_SERVICE_HOURS: {exc} (e.g. 'mon-fri 09-18, sat 10-14')") from None
        return value

    @field_validator("announce_quiet_hours")
    @classmethod
    def _quiet_hours_are_readable(cls, value: str) -> str:
        from bot.conversation.hours import HoursError, parse

        if value.strip().lower() in ("always", "24/7"):  # parse() reads these as open all day
            raise ValueError("HAMROH_ANNOUNCE_QUIET_HOURS cannot be the whole day; leave it empty for none")
        try:
            parse(value)
        except HoursError as exc:
            raise ValueError(f"HAMROH_ANNOUNCE_QUIET_HOURS: {exc} (e.g. '21:00-08:00', or empty)") from None
        return value.strip()

    @model_validator(mode="after")
    def _telegram_secret_is_usable(self) -> Settings:
        # What a usable secret looks like is a rule of `hamroh check --deploy` (bot/readiness/check.py),
        # which production start-up applies: one list of rules, said in the same words everywhere.
        secret = self.telegram_secret.get_secret_value() if self.telegram_secret else None
        if self.telegram_token is not None and secret is None:
            raise ValueError(
                "HAMROH_TELEGRAM_TOKEN needs HAMROH_TELEGRAM_SECRET (the webhook's secret token)"
            )
        return self

    @property
    def telegram_on(self) -> bool:
        """Whether Telegram is configured."""
        return self.telegram_token is not None and self.telegram_secret is not None

    @property
    def sms_on(self) -> bool:
        """Whether SMS through Twilio is configured."""
        sender = self.twilio_from or self.twilio_messaging_service_sid
        return bool(self.twilio_account_sid and self.twilio_auth_token and sender)

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
