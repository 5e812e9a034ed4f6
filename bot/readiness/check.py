"""`hamroh check --deploy`: what is not ready for production, each an ERROR or a WARNING.

Pure: settings, the loaded content and the confirmations in; findings out. A finding names the setting or
the fact and says what to do; it never quotes a secret's value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography.fernet import Fernet

from bot.config import Settings
from bot.conversation.flows import FlowSet
from bot.readiness.facts import DIRECTORY, Confirmation, Standing, facts_to_confirm, standings, strays

Level = Literal["ERROR", "WARNING"]
TELEGRAM_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")  # what Telegram accepts as a webhook secret token
MIN_TELEGRAM_SECRET = 16
MIN_HASH_KEY = 32  # the vault refuses shorter keys


@dataclass(frozen=True)
class Finding:
    """One thing not ready for production."""

    level: Level
    subject: str  # a setting ("HAMROH_HASH_KEY") or a fact ("fact legal.alimony")
    problem: str

    def __str__(self) -> str:
        return f"{self.level} {self.subject}: {self.problem}"


def deploy_check(
    settings: Settings,
    flows: FlowSet,
    confirmations: Sequence[Confirmation],
    *,
    unreadable: str | None = None,
) -> list[Finding]:
    """Everything not ready for production, errors first. `unreadable`: why the confirmations file failed."""
    findings = settings_findings(settings)
    if unreadable is not None:
        findings.append(Finding("ERROR", "HAMROH_CONFIRMATIONS_FILE", unreadable))
    facts = facts_to_confirm(flows)
    findings.extend(fact_findings(standings(facts, confirmations), allow=settings.allow_unconfirmed))
    findings.extend(
        Finding("WARNING", "HAMROH_CONFIRMATIONS_FILE", f"{c.fact} is not a fact marked verify: true")
        for c in strays(facts, confirmations)
    )
    findings.extend(directory_findings(flows))
    return errors(findings) + [f for f in findings if f.level == "WARNING"]


def errors(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that stop a deployment."""
    return [f for f in findings if f.level == "ERROR"]


def settings_findings(settings: Settings) -> list[Finding]:
    """Keys, secrets, channels and the simulator."""
    findings = key_findings(settings) + channel_findings(settings)
    if settings.simulator_on:
        findings.append(Finding("ERROR", "HAMROH_SIMULATOR", "on: it creates real records; set it false"))
    if settings.env != "production":
        findings.append(
            Finding("WARNING", "HAMROH_ENV", f"{settings.env}: serve refuses errors in production only")
        )
    return findings


def startup_refusals(settings: Settings, *, channels: bool) -> list[Finding]:
    """Why a command must not start: in production, the errors `check --deploy` lists about the keys (and,
    for a command that talks to the channels, about them and the simulator too); in development, only
    keys that are given but cannot be used (development makes its own when none are given)."""
    if settings.env == "production":
        return errors(settings_findings(settings) if channels else key_findings(settings))
    hash_key = settings.hash_key.get_secret_value() if settings.hash_key else None
    unusable = {
        "HAMROH_ENCRYPTION_KEY": settings.encryption_key is not None,
        "HAMROH_HASH_KEY": hash_key is not None and len(hash_key) < MIN_HASH_KEY,  # the vault refuses it
    }
    return [f for f in errors(key_findings(settings)) if unusable.get(f.subject)]


def key_findings(settings: Settings) -> list[Finding]:
    """The encryption and hash keys: present and strong."""
    findings = []
    if settings.encryption_key is None:
        findings.append(Finding("ERROR", "HAMROH_ENCRYPTION_KEY", "missing (see README: Configuration)"))
    elif not _fernet_keys(settings.encryption_key.get_secret_value()):
        findings.append(Finding("ERROR", "HAMROH_ENCRYPTION_KEY", "not Fernet keys, comma-separated"))
    if settings.hash_key is None:
        findings.append(Finding("ERROR", "HAMROH_HASH_KEY", "missing (see README: Configuration)"))
    else:
        weakness = hash_key_weakness(settings.hash_key.get_secret_value())
        if weakness:
            findings.append(Finding("ERROR", "HAMROH_HASH_KEY", weakness))
    return findings


def hash_key_weakness(key: str) -> str | None:
    """Why a hash key is weak (blank, repeated characters, short), or None."""
    if not key.strip():
        return "blank"
    if key in (key + key)[1:-1]:  # the whole key is one short run of characters said again and again
        return "repeated characters"
    if len(key) < MIN_HASH_KEY:
        return f"shorter than {MIN_HASH_KEY} characters"
    return None


def _fernet_keys(value: str) -> bool:
    keys = [k.strip() for k in value.split(",") if k.strip()]
    try:
        for key in keys:
            Fernet(key.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return False
    return bool(keys)


def channel_findings(settings: Settings) -> list[Finding]:
    """Telegram and SMS secrets, the public URL they call, and whether any channel is on at all."""
    findings = []
    telegram = settings.telegram_token is not None
    secret = settings.telegram_secret.get_secret_value() if settings.telegram_secret else None
    if telegram and secret is None:
        findings.append(Finding("ERROR", "HAMROH_TELEGRAM_SECRET", "missing while Telegram is on"))
    elif secret is not None and not TELEGRAM_SECRET.fullmatch(secret):
        findings.append(
            Finding("ERROR", "HAMROH_TELEGRAM_SECRET", "only A-Z a-z 0-9 _ -, 1 to 256 characters")
        )
    elif secret is not None and len(secret) < MIN_TELEGRAM_SECRET:
        findings.append(
            Finding("ERROR", "HAMROH_TELEGRAM_SECRET", f"shorter than {MIN_TELEGRAM_SECRET} characters")
        )

    sms = any((settings.twilio_account_sid, settings.twilio_from, settings.twilio_messaging_service_sid))
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
    if sms and not token.strip():
        findings.append(Finding("ERROR", "HAMROH_TWILIO_AUTH_TOKEN", "blank while SMS is on"))
    if sms and not settings.twilio_account_sid:
        findings.append(Finding("ERROR", "HAMROH_TWILIO_ACCOUNT_SID", "missing while SMS is on"))
    if sms and not (settings.twilio_from or settings.twilio_messaging_service_sid):
        findings.append(
            Finding("ERROR", "HAMROH_TWILIO_FROM", "SMS is on without a sender (or a Messaging Service SID)")
        )

    if telegram or sms:
        if not settings.public_url:
            findings.append(Finding("ERROR", "HAMROH_PUBLIC_URL", "missing: Telegram and Twilio call it"))
        elif not settings.public_url.lower().startswith("https://"):
            findings.append(Finding("ERROR", "HAMROH_PUBLIC_URL", "not https while a channel is on"))
    else:
        findings.append(
            Finding("WARNING", "channels", "none is on (set HAMROH_TELEGRAM_* or HAMROH_TWILIO_*)")
        )
    return findings


def fact_findings(facts: Iterable[Standing], *, allow: bool) -> list[Finding]:
    """A finding for each fact that no confirmation covers: a warning in a pilot that allows them."""
    level: Level = "WARNING" if allow else "ERROR"
    findings = []
    for standing in facts:
        fact = standing.fact
        if standing.confirmed:
            continue
        if standing.lapsed is not None:
            problem = (
                f"confirmed by {standing.lapsed.by} as reviewed {standing.lapsed.reviewed}, "
                f"changed since (now reviewed {fact.reviewed})"
            )
        else:
            problem = "not confirmed"
        findings.append(
            Finding(
                level,
                f"fact {fact.id} ({fact.where})",
                f"{problem}: hamroh facts confirm {fact.id} --by NAME",
            )
        )
    return findings


def directory_findings(flows: FlowSet) -> list[Finding]:
    """Directory entries without a number: the bot can only say where to ask."""
    return [
        Finding("WARNING", f"{DIRECTORY}.{service.id}", "no number: the bot tells her where to ask instead")
        for service in flows.directory.values()
        if not service.number
    ]


def summary(findings: Sequence[Finding]) -> str:
    """ "2 errors, 5 warnings"."""
    count = len(errors(findings))
    rest = len(findings) - count
    return f"{count} error{'s' * (count != 1)}, {rest} warning{'s' * (rest != 1)}"
