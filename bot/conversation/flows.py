"""The compiled content: nodes, words, directory and districts, in one immutable FlowSet.

`bot.conversation.flowload` builds it from the files; the engine only reads it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.conversation.i18n import Translations
from bot.conversation.triage import Lexicon

MAIN_FLOW = "main"
SYSTEM_NODES = ("welcome", "menu", "language", "help", "stopped", "resumed", "erase", "case_stop")
SAFETY_FLOW = "safety"  # one danger screen per triage category: safety.suicide, safety.violence...
AWAY_NODE = "counsellor.away"  # shown instead of an escalation's text outside service hours
SYSTEM_STRINGS = (
    "more",
    "source",
    "source_is",
    "menu",
    "back",
    "not_understood",
    "not_text",
    "no_courses",
    "erased",
    "district_unknown",
    "urgent_will_write",
    "case_waiting",
    "case_left",
)


@dataclass(frozen=True)
class Action:
    """What a node does when she reaches it."""

    kind: str
    queue: str | None = None  # escalate: None means the queue of where she was
    reason: str | None = None
    priority: str = "normal"  # escalate: urgent | normal
    lang: str | None = None
    script: str | None = None
    topics: tuple[str, ...] = ()  # subscribe: these topics (empty: every topic)


@dataclass(frozen=True)
class NodeOption:
    """An option as authored: its stable id, its label msgid and the node it leads to."""

    id: str
    label: str
    target: str
    channel: str | None = None  # "sms" or "telegram": shown only there; None: everywhere
    when: str | None = None  # "open", "full", "mine": the course she looks at is so; "none": no course near

    def shown_on(self, channel: str) -> bool:
        """Whether she sees this option on `channel`."""
        return self.channel is None or self.channel == channel


@dataclass(frozen=True)
class Node:
    """A compiled node. `ref` is "flow.node"; texts are msgids."""

    ref: str
    file: str
    line: int
    texts: tuple[str, ...]
    options: tuple[NodeOption, ...] = ()
    ask: bool = False
    save: str | None = None
    next: str | None = None
    invalid: str | None = None
    services: tuple[str, ...] = ()
    listing: str | None = None
    action: Action | None = None
    topic: str | None = None
    keywords: tuple[str, ...] = ()
    fact: bool = False
    source: str | None = None
    reviewed: dt.date | None = None
    verify: bool = False
    danger: bool = False  # a safety screen (no "Source" option)

    @property
    def flow(self) -> str:
        """The id of the flow this node belongs to."""
        return self.ref.split(".", 1)[0]

    def option(self, option_id: str) -> NodeOption | None:
        """The option with this id, if the node still has it."""
        return next((o for o in self.options if o.id == option_id), None)


@dataclass(frozen=True)
class Service:
    """An entry of the service directory."""

    id: str
    name: str
    number: str | None
    ask_at: str | None
    source: str
    reviewed: dt.date
    verify: bool
    districts: tuple[str, ...] = ()


@dataclass(frozen=True)
class District:
    """A district: its names in each language and the old names people still use."""

    id: str
    names: Mapping[str, str]
    region: str
    old_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Words:
    """Global words, folded for matching."""

    menu: frozenset[str]
    back: frozenset[str]
    language: frozenset[str]
    help: frozenset[str]
    erase: frozenset[str]
    stop: frozenset[str]
    start: frozenset[str]
    clear: frozenset[str]
    news: frozenset[str]  # exactly one of these: the news subscription screen
    languages: Mapping[str, str]  # language -> its name in itself (the welcome's buttons)
    erase_phrases: tuple[str, ...] = ()  # folded phrases that ask to delete her data anywhere in a message
    language_names: Mapping[str, str] = field(default_factory=dict)  # folded name -> language


@dataclass(frozen=True)
class FlowSet:
    """Everything the engine needs to talk: nodes, words, directory, districts and translations."""

    nodes: Mapping[str, Node]
    titles: Mapping[str, str]
    starts: Mapping[str, str]
    strings: Mapping[str, str]
    words: Words
    directory: Mapping[str, Service]
    districts: Mapping[str, District]
    district_names: Mapping[str, str]  # folded name (any language, old names too) -> district id
    keywords: tuple[tuple[str, str], ...]  # (folded keyword, node ref)
    translations: Translations
    triage: Lexicon  # crisis triage rules (triage.yaml)
    idle_reset: dt.timedelta = dt.timedelta(days=14)
    service_is_free: bool = False  # the deployment says so: only then does the greeting say "free"
    files: tuple[str, ...] = field(default=())

    def node(self, ref: str) -> Node:
        """The node with this ref (KeyError if none)."""
        return self.nodes[ref]

    def text(self, lang: str, msgid: str) -> str:
        """A msgid in her language (English when no translation exists)."""
        return self.translations.get(lang, msgid)
