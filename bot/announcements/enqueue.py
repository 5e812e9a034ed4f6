"""Enqueueing an announcement: the whole audience in a few set-based statements, never a row at a time.

1. The text is sealed once per language and letters choice (and once for Telegram), as her channel sends it.
2. Women counted when it was scheduled (`snapshot`) who have since opted out, blocked the bot, erased
   their data or stopped news are "blocked".
3. INSERT ... SELECT a bulk outbox row for each woman of the audience who has none yet: no
   address or body of its own (the dispatcher reads her contact's sealed address and the sealed text),
   held until her safe hours begin.
4. INSERT ... SELECT her recipient row from each new outbox row, linked to it (the unique key: a second
   run adds nobody twice; one counted when it was scheduled is linked).

Her safe hours have few distinct values: when each opens is computed once per value, in Python (the hours
are Asia/Dushanbe rules), and handed to the statements as a CASE.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
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
from bot.store.db import is_sqlite

ANALYZE_FROM = 10_000  # recipients: from this many, PostgreSQL's statistics are renewed at once
TELEGRAM = "telegram"  # the `script` of the text Telegram sends (Telegram has no letters choice)


async def enqueue(
    db: AsyncSession, vault: Vault, flows: FlowSet, announcement: Announcement, *, now: datetime
) -> int:
    """Queue the announcement to its whole audience as it is now; the number of women it will reach.

    Runs in the caller's transaction: either everyone is queued or, after a crash, nobody is.
    """
    assert announcement.id is not None
    audience = Audience.stored(announcement.audience)
    await seal_texts(db, vault, announcement)
    opens = await _safe_hours_opening(db, audience, flows, now)
    await _block_the_unreachable(db, announcement.id, audience, flows, now)
    outbox = OutboxMessage.__table__  # type: ignore[attr-defined]
    before = (await sql.rows(db, sa.select(sa.func.coalesce(sa.func.max(outbox.c.id), 0))))[0][0]
    await _add_outbox_rows(db, announcement.id, audience, flows, opens, now)
    await _add_recipients(db, announcement.id, int(before), now)
    size = await outcomes.total(db, announcement_id=announcement.id)
    if size >= ANALYZE_FROM and not is_sqlite(await db.connection()):
        # The planner must know the outbox grew by this much before the dispatcher's next claim, not
        # whenever autovacuum comes round: with last hour's statistics a claim reads the whole queue.
        await sql.run(db, sa.text("ANALYZE outbox, announcement_recipients"))
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


async def _add_outbox_rows(
    db: AsyncSession,
    announcement_id: int,
    audience: Audience,
    flows: FlowSet,
    opens: dict[str, datetime],
    now: datetime,
) -> None:
    """A bulk row for every woman of the audience who is not a recipient yet, with her text's id."""
    contacts = Contact.__table__  # type: ignore[attr-defined]
    recipients = AnnouncementRecipient.__table__  # type: ignore[attr-defined]
    outbox = OutboxMessage.__table__  # type: ignore[attr-defined]
    texts = AnnouncementText.__table__  # type: ignore[attr-defined]
    script = sa.case(
        (contacts.c.channel != "sms", sa.literal(TELEGRAM)),
        (contacts.c.script.in_(SCRIPTS), contacts.c.script),
        else_=sa.literal("cyrillic"),
    )
    leave_at: sa.ColumnElement[datetime] = sa.literal(now, UTCDateTime)
    held: sa.ColumnElement[bool] = sa.false()
    if opens:
        leave_at = sa.case(
            {value: sa.literal(at, UTCDateTime) for value, at in opens.items()},
            value=contacts.c.safe_hours,
            else_=sa.literal(now, UTCDateTime),
        )
        held = sa.case((contacts.c.safe_hours.in_(sorted(opens)), sa.true()), else_=sa.false())  # never NULL
    # Already given a row, or blocked: one only counted when it was scheduled is not.
    already = sa.select(sa.literal(1)).where(
        recipients.c.announcement_id == announcement_id,
        recipients.c.contact_id == contacts.c.id,
        sa.or_(recipients.c.outbox_id.is_not(None), recipients.c.outcome != outcomes.COUNTED),
    )
    select = (
        sa.select(
            contacts.c.id,
            outbox_channel(),
            sa.literal(b"", sa.LargeBinary),
            sa.literal(b"", sa.LargeBinary),
            sa.literal("bulk"),
            sa.literal(BULK_PRIORITY),
            sa.literal(QUEUED),
            sa.false(),
            sa.literal(0),
            sa.literal(now, UTCDateTime),
            leave_at,
            held,
            sa.false(),
            texts.c.id,
        )
        .select_from(contacts)
        .join(
            texts,
            sa.and_(
                texts.c.announcement_id == announcement_id,
                texts.c.lang == text_lang(),
                texts.c.script == script,
            ),
        )
        .where(*conditions(audience, flows), ~sa.exists(already))
        .order_by(contacts.c.id)
    )
    columns = [
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
    ]
    await sql.run(db, sa.insert(outbox).from_select(columns, select))


async def _add_recipients(db: AsyncSession, announcement_id: int, after: int, now: datetime) -> None:
    """A recipient for each bulk row just added (outbox ids above `after`), already linked to it.

    The unique key decides, not a NOT EXISTS over the table being filled: PostgreSQL would scan the
    rows the statement itself adds for every row it reads, and the time would grow with the square.
    """
    recipients = AnnouncementRecipient.__table__  # type: ignore[attr-defined]
    outbox = OutboxMessage.__table__  # type: ignore[attr-defined]
    texts = AnnouncementText.__table__  # type: ignore[attr-defined]
    select = (
        sa.select(
            sa.literal(announcement_id),
            outbox.c.contact_id,
            outbox.c.id,
            outbox.c.channel,
            texts.c.lang,
            sa.case((outbox.c.held, sa.literal("held")), else_=sa.literal(QUEUED)),
            sa.literal(now, UTCDateTime),
        )
        .select_from(outbox)
        .join(texts, texts.c.id == outbox.c.announcement_text_id)
        .where(outbox.c.id > after, texts.c.announcement_id == announcement_id)
    )
    columns = ["announcement_id", "contact_id", "outbox_id", "channel", "lang", "outcome", "updated_at"]
    insert = sqlite_insert if is_sqlite(await db.connection()) else postgresql_insert
    statement = insert(recipients).from_select(columns, select)
    # A recipient counted when it was scheduled is linked to her row now.
    linked = {name: statement.excluded[name] for name in ("outbox_id", "outcome", "updated_at")}
    await sql.run(
        db, statement.on_conflict_do_update(index_elements=["announcement_id", "contact_id"], set_=linked)
    )


async def snapshot(db: AsyncSession, flows: FlowSet, announcement: Announcement, *, now: datetime) -> int:
    """Count her in when the announcement is scheduled: a recipient row, "counted" (in none of the counts
    until its time), without an outbox row yet.

    At its time, whoever of them has since opted out, blocked the bot, erased her data or stopped news is
    "blocked" (see `enqueue`); women who asked for news meanwhile are added then. The number of recipients.
    """
    assert announcement.id is not None
    audience = Audience.stored(announcement.audience)
    contacts = Contact.__table__  # type: ignore[attr-defined]
    recipients = AnnouncementRecipient.__table__  # type: ignore[attr-defined]
    select = sa.select(
        sa.literal(announcement.id),
        contacts.c.id,
        outbox_channel(),
        text_lang(),
        sa.literal(outcomes.COUNTED),
        sa.literal(now, UTCDateTime),
    ).where(*conditions(audience, flows))
    columns = ["announcement_id", "contact_id", "channel", "lang", "outcome", "updated_at"]
    insert = sqlite_insert if is_sqlite(await db.connection()) else postgresql_insert
    await sql.run(
        db,
        insert(recipients)
        .from_select(columns, select)
        .on_conflict_do_nothing(index_elements=["announcement_id", "contact_id"]),
    )
    size = await outcomes.total(db, announcement_id=announcement.id)
    announcement.audience_size = size
    db.add(announcement)
    return size


async def _block_the_unreachable(
    db: AsyncSession, announcement_id: int, audience: Audience, flows: FlowSet, now: datetime
) -> None:
    """Recipients counted when it was scheduled who are no longer in its audience: "blocked"."""
    contacts = Contact.__table__  # type: ignore[attr-defined]
    recipients = AnnouncementRecipient.__table__  # type: ignore[attr-defined]
    still = sa.select(sa.literal(1)).where(
        contacts.c.id == recipients.c.contact_id, *conditions(audience, flows)
    )
    await sql.run(
        db,
        sa.update(recipients)
        .where(
            recipients.c.announcement_id == announcement_id,
            recipients.c.outbox_id.is_(None),
            recipients.c.outcome == outcomes.COUNTED,
            ~sa.exists(still),
        )
        .values(outcome=outcomes.BLOCKED, updated_at=now),
    )
