"""The values the engine reads and returns: plain, immutable, serialisable.

Nothing here touches a database or a network. A `Session` is saved as JSON between turns, so every field
is a plain value and `Session.from_json(s.to_json()) == s`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Literal

Channel = Literal["sms", "telegram"]
Script = Literal["cyrillic", "plain", "latin"]
CHANNELS: tuple[Channel, ...] = ("sms", "telegram")
SCRIPTS: tuple[Script, ...] = ("cyrillic", "plain", "latin")
OFFERED_LANGUAGES = ("tg", "ru")
LANGUAGES = ("tg", "ru", "en")
# What she may ask news about (the store keeps the same list: bot.store.announcements.NEWS_TOPICS).
NEWS_TOPICS = ("training", "legal_aid", "health", "events")
PartnerField = Literal["phone", "name"]

# Option keys the engine adds itself, beside the flow's own options.
MORE_KEY = "more"
SOURCE_KEY = "source"
MENU_KEY = "menu"


@dataclass(frozen=True)
class Session:
    """Where one woman stands in the conversation, and the little the bot knows of her."""

    lang: str | None = None
    node: str | None = None  # "flow.node"; None before she has chosen a language
    part: int = 0
    history: tuple[str, ...] = ()
    district: str | None = None
    script: Script = "cyrillic"
    subscribed: bool = False  # she has news of at least one topic (`news`)
    opted_out: bool = False
    last_active: datetime | None = None
    news: tuple[str, ...] = ()  # the topics of news she asked for, in NEWS_TOPICS order
    course: int | None = None  # the course she is looking at (its id), for its details and enrolling
    page: int = 0  # the page of a long list of courses she sees (numbers pick from that page)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of this session."""
        return {
            "lang": self.lang,
            "node": self.node,
            "part": self.part,
            "history": list(self.history),
            "district": self.district,
            "script": self.script,
            "subscribed": self.subscribed,
            "opted_out": self.opted_out,
            "last_active": self.last_active.isoformat() if self.last_active else None,
            "news": list(self.news),
            "course": self.course,
            "page": self.page,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Session:
        """Read a session saved by `to_json`; unknown or missing keys fall back to defaults."""
        last = data.get("last_active")
        script = data.get("script", "cyrillic")
        subscribed = bool(data.get("subscribed", False))
        # A session saved before news had topics: "subscribed" meant every topic.
        news = data.get("news", NEWS_TOPICS if subscribed else ())
        course = data.get("course")
        return cls(
            lang=data.get("lang"),
            node=data.get("node"),
            part=int(data.get("part", 0)),
            history=tuple(data.get("history", ())),
            district=data.get("district"),
            script=script if script in SCRIPTS else "cyrillic",
            subscribed=bool(news),
            opted_out=bool(data.get("opted_out", False)),
            last_active=datetime.fromisoformat(last) if last else None,
            news=tuple(t for t in NEWS_TOPICS if t in news),
            course=course if isinstance(course, int) else None,
            page=max(int(data.get("page", 0)), 0),
        )

    def with_news(self, topics: Iterable[str]) -> Session:
        """This session with exactly these news topics (known ones, in order); `subscribed` follows."""
        chosen = set(topics)
        news = tuple(t for t in NEWS_TOPICS if t in chosen)
        return replace(self, news=news, subscribed=bool(news))

    def at(self, node: str, part: int = 0) -> Session:
        """This session moved to `node`, remembering where it was for "back"."""
        history = self.history
        if self.node is not None and self.node != node:
            history = (*self.history, self.node)[-10:]
        return replace(self, node=node, part=part, history=history, page=0)


@dataclass(frozen=True)
class Input:
    """What she sent: text she typed, a button she pressed, or something that is not text."""

    text: str = ""
    button: str | None = None  # the key of a pressed option ("flow.node:option")
    media: bool = False  # a photo, voice message, sticker...
    channel: Channel = "sms"  # where she wrote: Telegram shows a topic whole and has buttons


@dataclass(frozen=True)
class Option:
    """One choice offered with a reply. `key` is stable across content edits; `label` is translated."""

    key: str
    label: str


@dataclass(frozen=True)
class Reply:
    """One message to her, channel-neutral: text and options, already in her language."""

    text: str
    options: tuple[Option, ...] = ()
    menu: str | None = None  # the label of the way back to the main menu (None on the menu itself)


@dataclass(frozen=True)
class Course:
    """A training course as the engine shows it (the service reads these from the database).

    `places_left` and `standing` change with every enrolment: the service fills them only for the
    screens that show them (a course's details, her courses), never from a cache.
    """

    titles: Mapping[str, str]  # language -> title
    district: str | None  # None: open to every district
    starts: date | None = None
    id: int = 0
    descriptions: Mapping[str, str] = field(default_factory=dict)  # language -> description
    place: str = ""
    ends: date | None = None
    capacity: int | None = None  # None: no limit
    places_left: int | None = None  # None: no limit (or not read this turn)
    partner: str = ""
    partner_fields: tuple[PartnerField, ...] = ("phone",)  # what the partner receives when she enrols
    standing: Literal["enrolled", "waiting"] | None = None  # hers, on this course

    def title(self, lang: str) -> str:
        """The title in her language, or in another when it has none in hers."""
        return self.titles.get(lang) or next((t for t in self.titles.values() if t), "")

    def description(self, lang: str) -> str:
        """The description in her language, or in another when it has none in hers."""
        return self.descriptions.get(lang) or next((t for t in self.descriptions.values() if t), "")

    @property
    def full(self) -> bool:
        """No place is left: enrolling puts her on the waiting list."""
        return self.places_left is not None and self.places_left <= 0


@dataclass(frozen=True)
class OpenCase:
    """Her case with a counsellor, as the engine needs to know it (the service reads it each turn)."""

    status: Literal["waiting", "active"]
    acknowledged: bool = False  # she was already told "a counsellor will write soon"


@dataclass(frozen=True)
class Counsellors:
    """Whether counsellors answer now, and when they are back (Dushanbe time, "09:00") when not."""

    available: bool = True
    back_at: str | None = None


# Events: what happened in a turn. The service applies them.


@dataclass(frozen=True)
class TopicViewed:
    """She opened a topic; the request log records it (never who she is)."""

    topic: str


@dataclass(frozen=True)
class EscalationRequested:
    """She asked for a counsellor, in the queue of where she was (legal, support, general)."""

    queue: str
    reason: str
    priority: str = "normal"  # urgent | normal


@dataclass(frozen=True)
class DangerDetected:
    """Her words signal danger: an urgent case opens (or hers is raised to urgent)."""

    category: str  # suicide | violence | child | sexual | trafficking
    rule: str


@dataclass(frozen=True)
class WroteToCase:
    """Her words (or a photo, a voice note) go to her open case's transcript, for the counsellor."""

    text: str
    media: bool = False


@dataclass(frozen=True)
class CaseLeft:
    """She left the chat with a counsellor (menu, or a confirmed stop word): her case closes."""


@dataclass(frozen=True)
class SafeHoursSet:
    """She said when it is safe to write to her ("18-21", Dushanbe time); None: any time."""

    hours: str | None


@dataclass(frozen=True)
class LanguageChanged:
    """She chose a language."""

    lang: str


@dataclass(frozen=True)
class DistrictSet:
    """She told us her district (a canonical id)."""

    district: str


@dataclass(frozen=True)
class ScriptChanged:
    """She chose the letters of her SMS."""

    script: Script


@dataclass(frozen=True)
class NewsChanged:
    """The topics of news she wants are now exactly these (empty: no news). Her district is her contact's."""

    topics: tuple[str, ...]


@dataclass(frozen=True)
class EnrolRequested:
    """She agreed to share exactly these details with the course's partner and asked for a place.

    The store decides under a lock whether she gets a place or joins the waiting list. `share_address`:
    her phone is her SMS address, which the service adds as "phone" (the engine never knows it).
    """

    course: int
    details: Mapping[str, str] = field(default_factory=dict)
    share_address: bool = False


@dataclass(frozen=True)
class CancelRequested:
    """She gives up her place (or her place on the waiting list) on a course."""

    course: int


@dataclass(frozen=True)
class OptedOut:
    """She sent a stop word: nothing more goes to her on this channel but the confirmation."""


@dataclass(frozen=True)
class OptedIn:
    """She sent a start word after stopping."""


@dataclass(frozen=True)
class EraseRequested:
    """She confirmed that everything about her is to be deleted."""


@dataclass(frozen=True)
class ClearChatRequested:
    """She asked Telegram to clear the chat on her phone."""


Event = (
    TopicViewed
    | EscalationRequested
    | DangerDetected
    | WroteToCase
    | CaseLeft
    | SafeHoursSet
    | LanguageChanged
    | DistrictSet
    | ScriptChanged
    | NewsChanged
    | EnrolRequested
    | CancelRequested
    | OptedOut
    | OptedIn
    | EraseRequested
    | ClearChatRequested
)


@dataclass(frozen=True)
class Turn:
    """The whole result of one turn: the new session, the replies to send, what happened."""

    session: Session
    replies: tuple[Reply, ...]
    events: tuple[Event, ...] = field(default=())
