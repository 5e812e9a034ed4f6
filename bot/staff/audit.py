"""The audit log: who did what, to which case, when. Never her words, her address or a secret."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.store import AuditEntry, Staff

COMMAND_LINE = "(command line)"  # the actor of changes made with `hamroh staff`, which has no account
MAX_ACTION = 32
MAX_DETAIL = 200


async def record(
    db: AsyncSession,
    *,
    staff: Staff | None,
    action: str,
    case_id: int | None = None,
    detail: str = "",
    now: datetime,
) -> AuditEntry:
    """Add an entry; `staff` None means the command line. `detail` is cut to fit, `action` must fit."""
    if not action or len(action) > MAX_ACTION:
        raise ValueError(f"an audit action has 1 to {MAX_ACTION} characters: {action!r}")
    entry = AuditEntry(
        at=now,
        staff_id=staff.id if staff is not None else None,
        staff_name=staff.name if staff is not None else COMMAND_LINE,
        action=action,
        case_id=case_id,
        detail=detail[:MAX_DETAIL],
    )
    db.add(entry)
    await db.flush()
    return entry


async def read_log(
    db: AsyncSession,
    *,
    limit: int = 100,
    before_id: int | None = None,
    staff_id: int | None = None,
    case_id: int | None = None,
) -> list[AuditEntry]:
    """Entries newest first, for an admin: pages by `before_id`, optionally one account's or one case's."""
    query = select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(max(1, min(limit, 1000)))
    if before_id is not None:
        query = query.where(col(AuditEntry.id) < before_id)
    if staff_id is not None:
        query = query.where(AuditEntry.staff_id == staff_id)
    if case_id is not None:
        query = query.where(AuditEntry.case_id == case_id)
    return list((await db.exec(query)).all())
