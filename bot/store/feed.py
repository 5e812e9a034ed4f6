"""Tables that coordinate processes: the console's event feed and the once-across-processes job clock."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from bot.store.tables import utc_time


class ConsoleEvent(SQLModel, table=True):
    """Something the console shows live (a case opened, a message came...). Ids order the feed: a
    reconnecting browser resumes after the last id it saw. Never her words or her address."""

    __tablename__ = "console_events"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = utc_time(index=True)
    kind: str = Field(max_length=32)  # case_opened | case_raised | case_message | case_claimed | ...
    case_id: int | None = None
    priority: str | None = Field(default=None, max_length=8)
    queue: str | None = Field(default=None, max_length=32)


class JobRun(SQLModel, table=True):
    """When a periodic job last ran: taken FOR UPDATE so that one process runs it at a time."""

    __tablename__ = "job_runs"

    name: str = Field(max_length=32, primary_key=True)
    ran_at: datetime = utc_time()
