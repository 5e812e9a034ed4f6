"""Storage: the tables (SQLModel), database connections (db), the vault that seals addresses and words
(crypto), migrations (migrate) and erasing her (erase). Nothing stored holds a phone number, a chat id or
her words in plain form.

Owns the schema every other package reads and writes. Must never import the engine, channels or api.
"""

from sqlmodel import SQLModel

from bot.store.cases import OPEN_STATUSES, Case, CaseEvent, CaseMessage
from bot.store.feed import ConsoleEvent, JobRun
from bot.store.staff import ROLES, AuditEntry, LoginThrottle, Staff, StaffSession
from bot.store.tables import (
    ChatMessage,
    Contact,
    ConversationState,
    CourseRow,
    Delivery,
    OutboxMessage,
    RequestLogEntry,
    UTCDateTime,
)

METADATA = SQLModel.metadata

__all__ = [
    "METADATA",
    "OPEN_STATUSES",
    "ROLES",
    "AuditEntry",
    "Case",
    "CaseEvent",
    "CaseMessage",
    "ChatMessage",
    "ConsoleEvent",
    "Contact",
    "ConversationState",
    "CourseRow",
    "Delivery",
    "JobRun",
    "LoginThrottle",
    "OutboxMessage",
    "RequestLogEntry",
    "Staff",
    "StaffSession",
    "UTCDateTime",
]
