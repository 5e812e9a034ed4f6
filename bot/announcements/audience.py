"""Who an announcement is for: filters a coordinator chooses, turned into one set-based query.

AND across keys, OR within a key; an empty key means everyone who subscribed. Only women who asked are
ever in an audience: for news (a subscription row, of the chosen topics if any), or, when courses alone
are chosen without topics, by enrolling in one of them (she asked for word of her course: a changed date
must reach her). Never one who opted out or cannot be reached. A woman whose district is unknown matches
any district or region filter: she asked for news everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import sqlalchemy as sa

from bot.announcements.errors import AnnouncementInvalid
from bot.conversation.flows import FlowSet
from bot.store import NEWS_TOPICS, Contact, Enrolment, Subscription
from bot.store.courses import CANCELLED

LANGS = ("tg", "ru")  # the languages an announcement is written in and women are offered
CHANNELS = ("telegram", "sms")
MAX_VALUES = 200  # per key: more is a mistake, not a filter


class AudienceInvalid(ValueError):
    """Filters that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Audience:
    """The filters of one announcement, as the coordinator chose them."""

    regions: tuple[str, ...] = ()
    districts: tuple[str, ...] = ()
    langs: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    courses: tuple[int, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any], flows: FlowSet) -> Audience:
        """Filters from JSON, checked against the districts and regions Hamroh knows.

        Raises AnnouncementInvalid with a reason a coordinator can act on.
        """
        try:
            return cls._read(data, flows)
        except AudienceInvalid as exc:
            raise AnnouncementInvalid(str(exc)) from None

    @classmethod
    def _read(cls, data: Mapping[str, Any], flows: FlowSet) -> Audience:
        if not isinstance(data, Mapping):
            raise AudienceInvalid("the audience is an object of filters")
        known = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise AudienceInvalid(f"unknown audience filter {unknown[0]!r}: use {', '.join(known)}")
        regions = {d.region for d in flows.districts.values()}
        allowed: dict[str, Sequence[str] | None] = {
            "regions": sorted(regions),
            "districts": sorted(flows.districts),
            "langs": LANGS,
            "channels": CHANNELS,
            "topics": NEWS_TOPICS,
        }
        values: dict[str, tuple[Any, ...]] = {}
        for name in known:
            raw = data.get(name)
            if raw is None:
                values[name] = ()
                continue
            if not isinstance(raw, list | tuple) or len(raw) > MAX_VALUES:
                raise AudienceInvalid(f"{name} is a list of at most {MAX_VALUES} values")
            if name == "courses":
                if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in raw):
                    raise AudienceInvalid("courses is a list of course ids")
                values[name] = tuple(sorted(set(raw)))
                continue
            choices = allowed[name]
            for value in raw:
                if not isinstance(value, str) or (choices is not None and value not in choices):
                    hint = ", ".join(choices) if choices is not None and len(choices) <= 10 else ""
                    raise AudienceInvalid(
                        f"unknown {name[:-1]} {value!r}" + (f": use {hint}" if hint else "")
                    )
            values[name] = tuple(sorted(set(raw)))
        return cls(**values)

    @classmethod
    def stored(cls, text: str) -> Audience:
        """The filters saved with an announcement, read as they were: a district since taken out of the
        flows matches nobody, rather than stopping the announcement (or the schedule) with an error."""
        data = json.loads(text)

        def words(name: str) -> tuple[str, ...]:
            return tuple(v for v in data.get(name) or () if isinstance(v, str))

        courses = tuple(
            v for v in data.get("courses") or () if isinstance(v, int) and not isinstance(v, bool)
        )
        return cls(
            regions=words("regions"),
            districts=words("districts"),
            langs=words("langs"),
            channels=words("channels"),
            topics=words("topics"),
            courses=courses,
        )

    def to_json(self) -> dict[str, list[Any]]:
        """The filters as JSON (every key, empty lists included)."""
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}

    def district_ids(self, flows: FlowSet) -> tuple[str, ...] | None:
        """The districts named directly or through their region; None when place does not matter."""
        if not self.regions and not self.districts:
            return None
        chosen = set(self.districts)
        chosen.update(d.id for d in flows.districts.values() if d.region in self.regions)
        return tuple(sorted(chosen))


def text_lang() -> sa.ColumnElement[str]:
    """The language of the text she receives: Russian if she chose it, otherwise Tajik."""
    return sa.case((_contacts().c.lang == "ru", sa.literal("ru")), else_=sa.literal("tg"))


def text_script() -> sa.ColumnElement[str]:
    """Which sealed text she receives: the letters she chose for SMS, or Telegram's rendering."""
    contacts = _contacts()
    return sa.case((contacts.c.channel == "sms", contacts.c.script), else_=sa.literal("telegram"))


def outbox_channel() -> sa.ColumnElement[str]:
    """The outbox channel of her contact (as bot/cases/deliver.py chooses it)."""
    return sa.case((_contacts().c.channel == "sms", sa.literal("sms")), else_=sa.literal("telegram"))


def conditions(audience: Audience, flows: FlowSet) -> list[sa.ColumnElement[bool]]:
    """WHERE conditions over `contacts` for this audience: only women who can receive news now."""
    contacts = _contacts()
    subscriptions = Subscription.__table__  # type: ignore[attr-defined]
    subscribed = sa.select(sa.literal(1)).where(subscriptions.c.contact_id == contacts.c.id)
    if audience.topics:
        subscribed = subscribed.where(subscriptions.c.topic.in_(audience.topics))
    asked_for_news = audience.topics or not audience.courses  # else her enrolment is her asking
    where: list[sa.ColumnElement[bool]] = [
        sa.exists(subscribed) if asked_for_news else sa.true(),
        sa.not_(contacts.c.opted_out),
        contacts.c.reachable,
    ]
    districts = audience.district_ids(flows)
    if districts is not None:
        where.append(sa.or_(contacts.c.district.is_(None), contacts.c.district.in_(districts)))
    if audience.langs:
        where.append(text_lang().in_(audience.langs))
    if audience.channels:
        where.append(outbox_channel().in_(audience.channels))
    if audience.courses:
        enrolments = Enrolment.__table__  # type: ignore[attr-defined]
        where.append(
            sa.exists(
                sa.select(sa.literal(1)).where(
                    enrolments.c.contact_id == contacts.c.id,
                    enrolments.c.course_id.in_(audience.courses),
                    enrolments.c.status != CANCELLED,
                )
            )
        )
    return where


def _contacts() -> sa.Table:
    return Contact.__table__  # type: ignore[attr-defined,no-any-return]
