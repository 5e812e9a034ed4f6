"""What the JSON API takes and gives: typed models, so that its OpenAPI schema says exactly that."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.cases.actions import MAX_TEXT
from bot.cases.transcript import Line
from bot.cases.views import CaseDetail, CaseSummary

Outcome = Literal["safety_plan", "referred", "information", "resolved", "no_contact", "other"]
Status = Literal["waiting", "active", "closed"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CaseItem(BaseModel):
    """A case as listed: never her words; her address masked (null once she erased her data)."""

    id: int
    status: Status
    priority: Literal["urgent", "normal"]
    category: str
    queue: str
    channel: Literal["sms", "telegram"]
    lang: str | None
    opened_at: datetime
    waiting_since: datetime
    address: str | None = Field(description="masked: the first and last characters only")
    counsellor: str | None = Field(description="who holds it (or closed it)")

    @classmethod
    def of(cls, summary: CaseSummary) -> CaseItem:
        """The listed form of a case summary."""
        return cls.model_validate(summary, from_attributes=True)


class CaseList(BaseModel):
    """Cases in the order to take them: urgent first, then the longest waiting."""

    cases: list[CaseItem]


class Message(BaseModel):
    """One message of the conversation with her."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    from_: Literal["her", "staff", "bot"] = Field(alias="from")
    text: str
    at: datetime


class Note(BaseModel):
    """An internal note of the staff: never sent to her."""

    text: str
    at: datetime


class CaseFull(CaseItem):
    """A case with its conversation and notes."""

    messages: list[Message]
    notes: list[Note]
    topics: list[str] = Field(description="topic ids she opened before asking for a counsellor")
    outcome: str | None
    held: int = Field(description="messages to her waiting for her safe hours")

    @classmethod
    def of_detail(cls, detail: CaseDetail) -> CaseFull:
        """The full form of a case as the views give it."""
        return cls(
            **CaseItem.of(detail.summary).model_dump(),
            messages=[_message(line) for line in detail.messages if line.author in ("her", "staff", "bot")],
            notes=[Note(text=line.text, at=line.at) for line in detail.messages if line.author == "note"],
            topics=detail.topics,
            outcome=detail.outcome,
            held=detail.held,
        )


def _message(line: Line) -> Message:
    return Message.model_validate({"from": line.author, "text": line.text, "at": line.at})


class NewMessage(_Body):
    """A message to her: it leaves in her safe hours."""

    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]


class Accepted(BaseModel):
    """The message is queued (it may wait for her safe hours)."""

    id: int
    at: datetime


class Closing(_Body):
    """How a case ended, and a note for colleagues (kept sealed)."""

    outcome: Outcome
    note: Annotated[str, Field(max_length=4000)] = ""


class Transfer(_Body):
    """To a colleague by name (it stays active, theirs) or to a queue (it waits again): one of the two."""

    to: Annotated[str | None, Field(min_length=1, max_length=64)] = None
    queue: Annotated[str | None, Field(min_length=1, max_length=32)] = None

    @model_validator(mode="after")
    def _one_target(self) -> Transfer:
        if (self.to is None) == (self.queue is None):
            raise ValueError('give either "to" (a name) or "queue"')
        return self
