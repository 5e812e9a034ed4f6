"""Storage: the tables (SQLModel), database connections (db), the vault that seals addresses and words
(crypto), migrations (migrate) and erasing her (erase). Nothing stored holds a phone number, a chat id or
her words in plain form.

Owns the schema every other package reads and writes. Must never import the engine, channels or api.
"""

from sqlmodel import SQLModel

from bot.store.announcements import (
    NEWS_TOPICS,
    Announcement,
    AnnouncementRecipient,
    AnnouncementText,
    Subscription,
)
from bot.store.cases import OPEN_STATUSES, Case, CaseEvent, CaseMessage
from bot.store.courses import PARTNER_FIELDS, CourseRow, Enrolment
from bot.store.feed import ConsoleEvent, JobRun
from bot.store.reports import RequestCount, RequestMarginal, RequestMonth
from bot.store.staff import ROLES, AuditEntry, LoginThrottle, Staff, StaffSession
from bot.store.tables import (
    ChatMessage,
    Contact,
    ConversationState,
    Delivery,
    OutboxMessage,
    RequestLogEntry,
    UTCDateTime,
)

METADATA = SQLModel.metadata

__all__ = [
    "METADATA",
    "NEWS_TOPICS",
    "OPEN_STATUSES",
    "PARTNER_FIELDS",
    "ROLES",
    "Announcement",
    "AnnouncementRecipient",
    "AnnouncementText",
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
    "Enrolment",
    "JobRun",
    "LoginThrottle",
    "OutboxMessage",
    "RequestCount",
    "RequestLogEntry",
    "RequestMarginal",
    "RequestMonth",
    "Staff",
    "StaffSession",
    "Subscription",
    "UTCDateTime",
]
