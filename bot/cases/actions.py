"""What staff do to cases: claim, reply, note, close, transfer, release, send now, safe hours, unmask.

Each function is one step inside the caller's transaction (`async with transaction(engine) as db:`) and
never commits. Each leaves an audit entry (never her words or her address in it), a console feed event
when the case changed, and an anonymised case event for the steps reports count.

Who may act: counsellors, supervisors and admins. Only the counsellor holding a case writes to it;
supervisors and admins may also close or transfer any open case.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import outbox
from bot.cases import deliver, events, feed, transcript
from bot.conversation.hours import HoursError, Window
from bot.conversation.hours import window as read_window
from bot.staff import audit
from bot.staff.accounts import find_staff
from bot.store import OPEN_STATUSES, Case, CaseMessage, Contact, OutboxMessage, Staff
from bot.store.crypto import Vault

# `erased` (she erased her data) and `left` (she left the chat) are set by the system only.
OUTCOMES = ("safety_plan", "referred", "information", "resolved", "no_contact", "other")
# The queues flows escalate to; a transfer may send a case to any of them.
QUEUES = ("general", "legal", "support")
HANDLERS = ("counsellor", "supervisor", "admin")
OVERSEERS = ("supervisor", "admin")
_UNSENDABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
MAX_TEXT = 1600  # ten UCS-2 SMS segments: beyond that a message is a letter, not a reply


class CaseError(Exception):
    """Why a step on a case cannot be done: a plain reason, fit for a 4xx answer."""


class CaseNotFound(CaseError):
    """No such case."""


class CaseConflict(CaseError):
    """The case is held by another counsellor, closed, or not yours to act on."""


class CaseForbidden(CaseError):
    """This role may not do this (unmasking her address, or acting on cases at all)."""


class CaseInvalid(CaseError):
    """The request itself is wrong: an empty text, an unknown outcome, queue, person or hours."""


async def claim(db: AsyncSession, *, case_id: int, staff: Staff, now: datetime) -> Case:
    """Take a waiting case. Two counsellors at once: one wins, the other gets CaseConflict.

    The guard is in the UPDATE itself (`... WHERE status = 'waiting'`): on PostgreSQL the loser's UPDATE
    waits for the winner's row lock, then finds the row no longer waiting and changes nothing.
    """
    _may_handle(staff)
    result = await db.exec(
        sa.update(Case)
        .where(col(Case.id) == case_id, col(Case.status) == "waiting")
        .values(status="active", counsellor_id=staff.id, claimed_at=now)
    )
    case = await _load(db, case_id)
    if int(result.rowcount or 0) != 1:
        if case.status == "active" and case.counsellor_id == staff.id:
            return case  # claiming one's own case again changes nothing
        raise CaseConflict("this case is closed" if case.status == "closed" else "another counsellor has it")
    await _changed(db, staff, case, "claimed", now, feed_kind="case_claimed", event="claimed")
    return case


async def reply(
    db: AsyncSession,
    vault: Vault,
    *,
    case_id: int,
    staff: Staff,
    text: str,
    now: datetime,
    send_now: bool = False,
) -> CaseMessage:
    """Write to her on her channel: held until her safe hours unless `send_now` (audited apart)."""
    text = _text(text)
    case = await _held(db, case_id, staff)
    contact = await _her(db, case)
    if send_now:  # her messages leave in the order written: what waits before this one goes first
        assert contact.id is not None
        await deliver.release_held(db, contact.id, now)
    await outbox.add(db, [deliver.to_her(vault, contact=contact, text=text, now=now, send_now=send_now)])
    message = transcript.add(db, vault, case=case, author="staff", text=text, now=now, staff_id=staff.id)
    case.last_staff_at = now
    db.add(case)
    await _changed(db, staff, case, "wrote", now, feed_kind="case_message")
    if send_now:
        await audit.record(db, staff=staff, action="send_now", case_id=case.id, detail="reply", now=now)
    return message


async def add_note(
    db: AsyncSession, vault: Vault, *, case_id: int, staff: Staff, text: str, now: datetime
) -> CaseMessage:
    """An internal note on the transcript, for colleagues: never sent to her."""
    text = _text(text)
    case = await _held(db, case_id, staff)
    message = transcript.add(db, vault, case=case, author="note", text=text, now=now, staff_id=staff.id)
    await _changed(db, staff, case, "noted", now, feed_kind="case_message")
    return message


async def close(
    db: AsyncSession, vault: Vault, *, case_id: int, staff: Staff, outcome: str, note: str, now: datetime
) -> Case:
    """Close a case with an outcome and a closing note (sealed). Supervisors may close any open case."""
    if outcome not in OUTCOMES:
        raise CaseInvalid(f"the outcome must be one of: {', '.join(OUTCOMES)}")
    case = await _held(db, case_id, staff, overseers_too=True)
    case.status, case.outcome, case.closed_at = "closed", outcome, now
    note = _tidy(note)
    case.note = vault.seal(note) if note else None
    db.add(case)
    await _changed(db, staff, case, "closed", now, feed_kind="case_closed", event="closed", detail=outcome)
    return case


async def transfer(
    db: AsyncSession,
    *,
    case_id: int,
    staff: Staff,
    to_staff: str | None = None,
    to_queue: str | None = None,
    now: datetime,
) -> Case:
    """Hand a case to a named colleague (it stays active, theirs now) or to a queue (it waits again).

    `to_staff` is the colleague's name; exactly one of `to_staff` and `to_queue` is given.
    """
    if (to_staff is None) == (to_queue is None):
        raise CaseInvalid("transfer to a person or to a queue, not both")
    if to_queue is not None and to_queue not in QUEUES:
        raise CaseInvalid(f"the queue must be one of: {', '.join(QUEUES)}")
    colleague = None
    if to_staff is not None:
        # A control character or a lone surrogate is in no name, and the database refuses to look for one.
        colleague = None if _UNSENDABLE.search(to_staff) else await find_staff(db, name=to_staff)
        if colleague is None or colleague.disabled or colleague.role not in HANDLERS:
            raise CaseInvalid("no active counsellor, supervisor or admin has that name")
    case = await _held(db, case_id, staff, overseers_too=True)
    if colleague is not None:
        case.status, case.counsellor_id = "active", colleague.id
        case.claimed_at = case.claimed_at or now
        detail = f"to {colleague.name}"
    else:
        assert to_queue is not None
        case.status, case.counsellor_id, case.queue, case.waiting_since = "waiting", None, to_queue, now
        detail = f"to queue {to_queue}"
    db.add(case)
    await _changed(
        db, staff, case, "transferred", now, feed_kind="case_transferred", event="transferred", detail=detail
    )
    return case


async def release(db: AsyncSession, *, case_id: int, staff: Staff, now: datetime) -> Case:
    """The holder gives a case back to its queue, where it waits again from now."""
    case = await _held(db, case_id, staff)
    case.status, case.counsellor_id, case.waiting_since = "waiting", None, now
    db.add(case)
    await _changed(db, staff, case, "released", now, feed_kind="case_returned", event="returned")
    return case


async def send_held_now(db: AsyncSession, *, case_id: int, staff: Staff, now: datetime) -> int:
    """Let the messages held for her safe hours leave now (the counsellor judged it safe); how many."""
    case = await _held(db, case_id, staff)
    contact = await _her(db, case)
    assert contact.id is not None
    released = await deliver.release_held(db, contact.id, now)
    await _changed(db, staff, case, "send_now", now, feed_kind="case_message", detail=f"{released} held")
    return released


async def set_safe_hours(
    db: AsyncSession, *, case_id: int, staff: Staff, hours: str | None, now: datetime
) -> Case:
    """Set when it is safe to write to her ("18-21", Dushanbe time), as she asked; None: any time.

    Messages already held wait for the new hours instead (or leave now, when she may be written to now).
    """
    window: Window | None = None
    if hours is not None and hours.strip():
        try:
            window = read_window(hours)
        except HoursError as exc:
            raise CaseInvalid(str(exc)) from None
    case = await _held(db, case_id, staff)
    contact = await _her(db, case)
    assert contact.id is not None
    contact.safe_hours = window.text() if window is not None else None
    db.add(contact)
    leave_at = deliver.safe_from(contact, now)
    if leave_at <= now:
        await deliver.release_held(db, contact.id, now)
    else:
        await db.exec(
            sa.update(OutboxMessage)
            .where(col(OutboxMessage.contact_id) == contact.id, col(OutboxMessage.held))
            .values(next_attempt_at=leave_at)
        )
    # When she is safe to reach is hers to tell, not the audit log's: only whether hours are set.
    detail = "set" if window is not None else "any time"
    await _changed(db, staff, case, "safe_hours", now, feed_kind="case_message", detail=detail)
    return case


async def unmask(db: AsyncSession, vault: Vault, *, case_id: int, staff: Staff, now: datetime) -> str:
    """Her full address, for a call when she is in danger: supervisors on urgent cases, and admins."""
    _may_handle(staff)
    case = await _load(db, case_id)
    if staff.role != "admin" and not (staff.role == "supervisor" and case.priority == "urgent"):
        raise CaseForbidden("only a supervisor on an urgent case, or an admin, may see her full address")
    contact = await _her(db, case)
    await audit.record(db, staff=staff, action="unmasked", case_id=case.id, now=now)
    return vault.open(contact.address)


def _text(text: str) -> str:
    text = _tidy(text)
    if not text:
        raise CaseInvalid("the text is empty")
    if len(text) > MAX_TEXT:
        raise CaseInvalid(f"the text is too long: at most {MAX_TEXT} characters")
    return text


def _tidy(text: str) -> str:
    """Text as it can be sealed and sent: NFC, line breaks kept, no control characters or lone
    surrogates (which a JSON body may carry and UTF-8 cannot)."""
    text = _UNSENDABLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return unicodedata.normalize("NFC", text).strip()


def _may_handle(staff: Staff) -> None:
    if staff.disabled or staff.role not in HANDLERS:
        raise CaseForbidden("only counsellors, supervisors and admins work on cases")


async def _load(db: AsyncSession, case_id: int) -> Case:
    # Locked for the rest of the transaction: a close and a transfer at once take turns.
    case = await db.get(Case, case_id, populate_existing=True, with_for_update=True)
    if case is None:
        raise CaseNotFound("no such case")
    return case


async def _held(db: AsyncSession, case_id: int, staff: Staff, *, overseers_too: bool = False) -> Case:
    """The case, if this person may act on it: its holder, or (for `overseers_too`) a supervisor or admin
    on any open case."""
    _may_handle(staff)
    case = await _load(db, case_id)
    if case.status not in OPEN_STATUSES:
        raise CaseConflict("this case is closed")
    if overseers_too and staff.role in OVERSEERS:
        return case
    if case.status != "active" or case.counsellor_id != staff.id:
        raise CaseConflict(
            "this case is not yours: claim it first"
            if case.status == "waiting"
            else "another counsellor has it"
        )
    return case


async def _her(db: AsyncSession, case: Case) -> Contact:
    contact = await db.get(Contact, case.contact_id) if case.contact_id is not None else None
    if contact is None:
        raise CaseConflict("she erased her data: there is no one to write to")
    return contact


async def _changed(
    db: AsyncSession,
    staff: Staff,
    case: Case,
    action: str,
    now: datetime,
    *,
    feed_kind: str,
    event: str | None = None,
    detail: str = "",
) -> None:
    """The traces every step leaves: audit entry, console feed event, and the anonymised case event."""
    await audit.record(db, staff=staff, action=action, case_id=case.id, detail=detail, now=now)
    await feed.publish(db, feed_kind, case, now)
    if event is not None:
        events.record(db, event, case, now)
