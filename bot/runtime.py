"""Putting Hamroh together from its settings: content, keys, database, service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from datetime import UTC, datetime, timedelta

from bot import retention
from bot.announcements import reminders
from bot.announcements import scheduler as announcement_jobs
from bot.cases import jobs
from bot.config import Settings
from bot.conversation import hours
from bot.conversation.flowload import load_flowset
from bot.conversation.flows import FlowSet
from bot.conversation.i18n import load_translations
from bot.dispatcher import Dispatcher, Limits
from bot.reports import rollup as report_rollup
from bot.senders import Sender
from bot.service import Hamroh
from bot.store.crypto import Vault, development_keys, make_vault
from bot.store.db import create_engine

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
    return load_flowset(
        settings.flows_dir,
        translations,
        idle_reset=settings.idle_reset,
        service_is_free=settings.service_is_free,
    )


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
        engine=create_engine(settings.database_url, command_timeout=settings.turn_timeout_seconds),
        flows=flows if flows is not None else load_content(settings),
        vault=vault_for(settings),
        clock=utc_now,
        new_token=new_token,
        service_hours=hours.parse(settings.service_hours),
        staff_chat=f"tg:{settings.staff_telegram_chat}" if settings.staff_telegram_chat else None,
    )


def senders_for(settings: Settings) -> list[Sender]:
    """A sender for each channel whose credentials are configured (call inside the event loop)."""
    from bot.channels.telegram import TelegramSender
    from bot.channels.twilio import sms_sender

    senders: list[Sender] = []
    if settings.telegram_on:
        senders.append(TelegramSender.from_settings(settings))
    if settings.sms_on:
        senders.append(sms_sender(settings, timeout=settings.twilio_timeout_seconds))
    return senders


# How many Telegram messages may leave at once, whatever the rate: a burst is a count of messages, not a share
# of a second, so it stays the same when the rate is set higher (or a benchmark speeds the clock up). Three
# is what a tenth of a second holds at Telegram's 30 messages a second: enough for the replies of a few
# turns that finish together to leave at once, and small enough that a burst on top of a full second's
# sending stays far within what Telegram tolerates (a burst on top of the rate is what it punishes with 429).
TELEGRAM_BURST = 3.0


def limits_for(settings: Settings) -> Limits:
    """The providers' rates as configured."""
    return Limits(
        per_second={
            "telegram": settings.telegram_messages_per_second,
            "sms": settings.twilio_segments_per_second,
        },
        per_chat_gap={"telegram": 1 / settings.telegram_chat_messages_per_second},
        burst={"telegram": TELEGRAM_BURST},
    )


def dispatcher_for(settings: Settings, hamroh: Hamroh, senders: list[Sender]) -> Dispatcher:
    """The dispatcher for these settings, sending through `senders`."""
    return Dispatcher(
        engine=hamroh.engine,
        vault=hamroh.vault,
        senders=senders,
        limits=limits_for(settings),
        clock=hamroh.clock,
        lease=timedelta(seconds=settings.dispatch_lease_seconds),
        sender_hold=timedelta(seconds=settings.dispatch_sender_hold_seconds),
    )


def channels_said(settings: Settings) -> str:
    """Which channels are on, for the first line of `hamroh serve` (never a credential)."""
    on = [name for name, is_on in (("telegram", settings.telegram_on), ("sms", settings.sms_on)) if is_on]
    return ", ".join(on) if on else "none (set HAMROH_TELEGRAM_* or HAMROH_TWILIO_*; see README)"


async def run_dispatcher(settings: Settings, hamroh: Hamroh, stop: asyncio.Event) -> None:
    """Run a dispatcher for the configured channels until `stop` is set, then close the senders."""
    senders = senders_for(settings)
    if not senders:
        log.info("no channel is configured: the dispatcher has nothing to send")
        await stop.wait()
        return
    try:
        await dispatcher_for(settings, hamroh, senders).run(stop)
    finally:
        for sender in senders:
            await sender.close()


def case_timing(settings: Settings) -> jobs.Timing:
    """How long cases may wait before the case jobs act, as configured."""
    return jobs.Timing(
        urgent_unclaimed=timedelta(minutes=settings.urgent_unclaimed_minutes),
        active_silent=timedelta(minutes=settings.active_silent_minutes),
        waiting_abandoned=timedelta(hours=settings.waiting_abandoned_hours),
        transcript_kept=timedelta(days=settings.transcript_days),
    )


def retention_policy(settings: Settings) -> retention.Policy:
    """How long what is kept about her stays, as configured."""
    return retention.Policy(
        body_kept=timedelta(minutes=settings.outbox_body_minutes),
        outbox_kept=timedelta(days=settings.outbox_days),
        deliveries_kept=timedelta(days=settings.delivery_days),
        history_kept=timedelta(hours=settings.session_history_hours),
        inactive=timedelta(days=settings.inactive_days),
    )


async def run_case_jobs(settings: Settings, hamroh: Hamroh, stop: asyncio.Event) -> None:
    """Run the case jobs, retention and the announcements' schedule every few seconds until `stop` is
    set (one process at a time does the work)."""
    every = timedelta(seconds=settings.jobs_interval_seconds)
    while not stop.is_set():
        try:
            await jobs.run_if_due(
                hamroh.engine,
                hamroh.vault,
                timing=case_timing(settings),
                staff_chat=hamroh.staff_chat,
                every=every,
                now=hamroh.clock(),
            )
        except Exception as exc:  # the database is away: the next round tries again
            log.warning("case jobs failed (%s); trying again", type(exc).__name__)
        try:
            await retention.run_if_due(
                hamroh.engine,
                hamroh.vault,
                policy=retention_policy(settings),
                every=every,
                now=hamroh.clock(),
            )
        except Exception as exc:  # as above: nothing is lost by waiting a round
            log.warning("retention failed (%s); trying again", type(exc).__name__)
        try:
            await reminders.run_if_due(
                hamroh.engine,
                hamroh.vault,
                hamroh.flows,
                before=timedelta(hours=settings.course_reminder_hours),
                every=every,
                now=hamroh.clock(),
            )
        except Exception as exc:  # as above: a reminder due now is queued next round
            log.warning("course reminders failed (%s); trying again", type(exc).__name__)
        try:
            await announcement_jobs.run_if_due(
                hamroh.engine, hamroh.vault, hamroh.flows, every=every, now=hamroh.clock()
            )
        except Exception as exc:  # as above: a due announcement is enqueued next round
            log.warning("announcement jobs failed (%s); trying again", type(exc).__name__)
        try:  # a month that has just closed is counted now, not by the first report page to ask
            await report_rollup.refresh(hamroh.engine, now=hamroh.clock())
        except Exception as exc:  # as above: the page counts it itself if need be
            log.warning("report rollup failed (%s); trying again", type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every.total_seconds())
