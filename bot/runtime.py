"""Putting Hamroh together from its settings: content, keys, database, service."""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime

from bot.config import Settings
from bot.crypto import Vault, development_keys, make_vault
from bot.db import create_engine
from bot.flowload import load_flowset
from bot.flows import FlowSet
from bot.i18n import load_translations
from bot.service import Hamroh

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    """The real clock (tests pass their own)."""
    return datetime.now(UTC)


def new_token() -> str:
    """A fresh random pseudonym."""
    return secrets.token_hex(8)


def load_content(settings: Settings) -> FlowSet:
    """Flows and catalogues; FlowError if any flow file is broken (start-up stops, nothing half-loaded)."""
    translations = load_translations(settings.locales_dir)
    return load_flowset(settings.flows_dir, translations, idle_reset=settings.idle_reset)


def vault_for(settings: Settings) -> Vault:
    """Keys from the environment; in development only, generated into var/ when absent."""
    if settings.encryption_key is not None and settings.hash_key is not None:
        return make_vault(settings.encryption_key.get_secret_value(), settings.hash_key.get_secret_value())
    if settings.env != "development":  # the settings already refuse this; keep the guard where keys are made
        raise RuntimeError("keys must come from the environment outside development")
    encryption_key, hash_key = development_keys(settings.var_dir)
    return make_vault(encryption_key, hash_key)


def build(settings: Settings, flows: FlowSet | None = None) -> Hamroh:
    """The service for these settings (the database must already be migrated)."""
    return Hamroh(
        engine=create_engine(settings.database_url),
        flows=flows if flows is not None else load_content(settings),
        vault=vault_for(settings),
        clock=utc_now,
        new_token=new_token,
    )
