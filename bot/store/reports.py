"""Tables of the reports' monthly rollup of the request log: counts only, never a pseudonym.

A month is rolled up once it has closed (Asia/Dushanbe): the request log gets rows only for the hour in
which they are written, so a closed month never changes, and its counts can be read from here instead of
from every row of the log.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from bot.store.tables import utc_time


class RequestMonth(SQLModel, table=True):
    """A closed month that has been rolled up, with the women who asked that month (monthly pseudonyms)."""

    __tablename__ = "request_months"

    month: str = Field(max_length=7, primary_key=True)  # "2026-11", Asia/Dushanbe
    requests: int
    women: int
    rolled_at: datetime = utc_time()


class RequestCount(SQLModel, table=True):
    """Requests of one closed month for one topic, channel, language and district ("" when unknown)."""

    __tablename__ = "request_counts"

    month: str = Field(max_length=7, primary_key=True)
    topic: str = Field(max_length=64, primary_key=True)
    channel: str = Field(max_length=16, primary_key=True)
    lang: str = Field(max_length=8, primary_key=True)
    district: str = Field(max_length=64, primary_key=True)
    requests: int


class RequestMarginal(SQLModel, table=True):
    """Requests of one closed month for one value of one key (topic, channel, lang or district): what the
    report page's one-key tables read, a few hundred rows a month however many women asked."""

    __tablename__ = "request_marginals"

    month: str = Field(max_length=7, primary_key=True)
    key: str = Field(max_length=16, primary_key=True)
    value: str = Field(max_length=64, primary_key=True)
    requests: int
