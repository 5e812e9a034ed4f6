"""Enqueueing an announcement: the whole audience in a few set-based statements, never a row at a time.

1. The text is sealed once per language and letters choice (and once for Telegram), as her channel sends it.
2. INSERT ... SELECT her recipient row (the unique key: a second run adds nobody twice).
3. INSERT ... SELECT a bulk outbox row for each recipient without one: no address or body of its own (the
   dispatcher reads her contact's sealed address and the sealed text), held until her safe hours begin.
4. Each recipient is linked to its outbox row (UPDATE ... FROM).

Her safe hours have few distinct values: when each opens is computed once per value, in Python (the hours
are Asia/Dushanbe rules), and handed to the statements as a CASE.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.announcements import outcomes, sql
from bot.announcements.audience import LANGS, Audience, conditions, outbox_channel, text_lang
from bot.cases.deliver import body_for
from bot.conversation import hours
from bot.conversation.flows import FlowSet
from bot.conversation.model import SCRIPTS
from bot.outbox import BULK_PRIORITY, QUEUED
from bot.store import (
    Announcement,
    AnnouncementRecipient,
    AnnouncementText,
    Contact,
    OutboxMessage,
    UTCDateTime,
)
from bot.store.crypto import Vault

TELEGRAM = "telegram"  # the `script` of the text Telegram sends (Telegram has no letters choice)


async def enqueue(
    db: AsyncSession, vault: Vault, flows: FlowSet, announcement: Announcement, *, now: datetime
) -> int:
    """Queue the announcement to its whole audience as it is now; the number of women it will reach.

    Runs in the caller's transaction: either everyone is queued or, after a crash, nobody is.
    """
    assert announcement.id is not None
    audience = Audience.from_json(json.loads(announcement.audience), flows)
    texts = await seal_texts(db, vault, announcement)
    opens = await _safe_hours_opening(db, audience, flows, now)
    await _add_recipients(db, announcement.id, audience, flows, opens, now)
    await _add_outbox_rows(db, announcement.id, opens, now)
    await _link(db, announcement.id, texts)
    size = await outcomes.total(db, announcement_id=announcement.id)
    announcement.status, announcement.enqueued_at, announcement.audience_size = "sending", now, size
    db.add(announcement)
    await db.flush()
    return size


async def seal_texts(
    db: AsyncSession, vault: Vault, announcement: Announcement
) -> dict[tuple[str, str], int]:
    """The announcement's texts, sealed once each: (lang, script) -> AnnouncementText id."""
    table = AnnouncementText.__table__  # type: ignore[attr-defined]
    have = {
        (lang, script): int(text_id)
        for text_id, lang, script in (
            await sql.rows(
                db,
                sa.select(table.c.id, table.c.lang, table.c.script).where(
                    table.c.announcement_id == announcement.id
                ),
            )
        )
    }
    assert announcement.id is not None
    bodies: list[tuple[str, dict[str, Any]]] = []
    for lang in LANGS:
        text = announcement.text_tg if lang == "tg" else announcement.text_ru
        bodies = [(s, body_for("sms", text, s)) for s in SCRIPTS] + [
            (TELEGRAM, body_for("telegram", text, "cyrillic"))
        ]
        for script, body in bodies:
            if (lang, script) in have:
                continue
            row = AnnouncementText(
                announcement_id=announcement.id,
                lang=lang,
                script=script,
                body=vault.seal(json.dumps(body, ensure_ascii=False)),
            )
            db.add(row)
            await db.flush()
            assert row.id is not None
            have[(lang, script)] = row.id
    return have


async def _safe_hours_opening(
    db: AsyncSession, audience: Audience, flows: FlowSet, now: datetime
) -> dict[str, datetime]:
    """For each safe-hours value in the audience that is closed now: when it opens."""
    contacts = Contact.__table__  # type: ignore[attr-defined]
    values = (
        await sql.run(
            db,
            sa.select(contacts.c.safe_hours)
            .where(*conditions(audience, flows), contacts.c.safe_hours.is_not(None))
            .distinct(),
        )
    ).all()
    opens: dict[str, datetime] = {}
    for (value,) in values:
        try:
            at = hours.parse(value).next_open(now)
        except hours.HoursError:  # stored hours are validated when set; never hold on a bad value
            continue
        if at > now:
            opens[value] = at
    return opens


async def _add_recipients(
    db: AsyncSession,
    announcement_id: int,
    audience: Audience,
    flows: FlowSet,
    opens: dict[str, datetime],
    now: datetime,
) -> None:
    contacts = Contact.__table__  # type: ignore[attr-defined]
    recipients = AnnouncementRecipient.__table__  # type: ignore[attr-defined]
    outcome: sa.ColumnElement[str] = (
        sa.case(
            {value: sa.literal("held") for value in opens},
            value=contacts.c.safe_hours,
            else_=sa.literal(QUEUED),
        )
        if opens
        else sa.literal(QUEUED)
    )
    already = sa.select(sa.literal(1)).where(
        recipients.c.announcement_id == announcement_id, recipients.c.contact_id == contacts.c.id
    )
    select = sa.select(
        sa.literal(announcement_id),
        contacts.c.id,
        outbox_channel(),
        text_lang(),
        outcome,
        sa.literal(now, UTCDateTime),
    ).where(*conditions(audience, flows), ~sa.exists(already))
    await sql.run(
        db,
        sa.insert(recipients).from_select(
            ["announcement_id", "contact_id", "channel", "lang", "outcome", "updated_at"], select
        ),
    )


async def _add_outbox_rows(
    db: AsyncSession,
    announcement_id: int,
    opens: dict[str, datetime],
    now: datetime,
) -> None:
    contacts = Contact.__table__  # type: ignore[attr-defined]
    recipients = AnnouncementRecipient.__table__  # type: ignore[attr-defined]
    outbox = OutboxMessage.__table__  # type: ignore[attr-defined]
    text_table = AnnouncementText.__table__  # type: ignore[attr-defined]
    script = sa.case(
        (contacts.c.channel != "sms", sa.literal(TELEGRAM)),
        (contacts.c.script.in_(SCRIPTS), contacts.c.script),
        else_=sa.literal("cyrillic"),
    )
    leave_at: sa.ColumnElement[datetime] = (
        sa.case(
            {value: sa.literal(at, UTCDateTime) for value, at in opens.items()},
            value=contacts.c.safe_hours,
            else_=sa.literal(now, UTCDateTime),
        )
        if opens
        else sa.literal(now, UTCDateTime)
    )
    select = (
        sa.select(
            recipients.c.contact_id,
            recipients.c.channel,
            sa.literal(b"", sa.LargeBinary),
            sa.literal(b"", sa.LargeBinary),
            sa.literal("bulk"),
            sa.literal(BULK_PRIORITY),
            sa.literal(QUEUED),
            sa.false(),
            sa.literal(0),
            sa.literal(now, UTCDateTime),
            leave_at,
            recipients.c.outcome == "held",
            sa.false(),
            text_table.c.id,
        )
        .select_from(recipients)
        .join(contacts, contacts.c.id == recipients.c.contact_id)
        .join(
            text_table,
            sa.and_(
                text_table.c.announcement_id == announcement_id,
                text_table.c.lang == recipients.c.lang,
                text_table.c.script == script,
            ),
        )
        .where(
            recipients.c.announcement_id == announcement_id,
            recipients.c.outbox_id.is_(None),
            recipients.c.outcome.in_((QUEUED, "held")),
        )
        .order_by(recipients.c.id)
    )
    await sql.run(
        db,
        sa.insert(outbox).from_select(
            [
                "contact_id",
                "channel",
                "address",
                "body",
                "kind",
                "priority",
                "status",
                "ephemeral",
                "attempts",
                "created_at",
                "next_attempt_at",
                "held",
                "in_doubt",
                "announcement_text_id",
            ],
            select,
        ),
    )


async def _link(db: AsyncSession, announcement_id: int, texts: dict[tuple[str, str], int]) -> None:
    recipients = AnnouncementRecipient.__table__  # type: ignore[attr-defined]
    outbox = OutboxMessage.__table__  # type: ignore[attr-defined]
    await sql.run(
        db,
        sa.update(recipients)
        .where(
            recipients.c.announcement_id == announcement_id,
            recipients.c.outbox_id.is_(None),
            outbox.c.contact_id == recipients.c.contact_id,
            outbox.c.announcement_text_id.in_(sorted(set(texts.values()))),
        )
        .values(outbox_id=outbox.c.id),
    )
