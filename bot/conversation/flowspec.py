"""The schema of flow files and data files, and reading YAML with line numbers for clear errors."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

NAME = r"^[a-z][a-z0-9_]*$"
TARGET = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$")
ActionKind = Literal[
    "escalate",
    "subscribe",
    "unsubscribe",
    "set_language",
    "set_script",
    "erase",
    "clear_chat",
    "safe_any_time",
    "opt_out",
    "enrol",
    "cancel_enrolment",
]
# Screens with lines or options from the data of the moment (bot.conversation.listings).
ListingKind = Literal["courses", "course", "course_about", "mine", "consent", "news_topics", "news_status"]
# Answers to questions: her district, her safe hours, or what she shares with a training partner (the last
# three are used in the turn she types them and never saved).
SaveKind = Literal["district", "safe_hours", "enrol_name", "enrol_phone", "enrol_name_phone"]
# An option shown only when the course she looks at is open (places left), full, or already hers; or
# when no course is near her.
WhenKind = Literal["open", "full", "mine", "none"]
DATA_FILES = ("words.yaml", "directory.yaml", "districts.yaml")


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a content file, where it is."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class FlowError(Exception):
    """Content that cannot be loaded; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class OptionSpec(_Spec):
    label: str = Field(min_length=1)
    go: str = Field(pattern=TARGET.pattern)
    id: str | None = Field(default=None, pattern=NAME)
    channel: Literal["sms", "telegram"] | None = None  # shown only on this channel
    when: WhenKind | None = None  # shown only when the course she looks at is so


class NodeSpec(_Spec):
    say: str | None = Field(default=None, min_length=1)
    parts: list[str] | None = Field(default=None, min_length=1)
    ask: str | None = Field(default=None, min_length=1)
    save: SaveKind | None = None
    next: str | None = Field(default=None, pattern=TARGET.pattern)
    invalid: str | None = None
    options: list[OptionSpec] = []
    services: list[str] = []
    listing: ListingKind | None = Field(default=None, alias="list")
    do: ActionKind | None = None
    queue: str | None = Field(default=None, pattern=NAME)  # escalate: default, by where she was
    priority: Literal["urgent", "normal"] | None = None
    danger: bool = False  # a safety screen: calm first words, 112 first, no "Source" option
    reason: str | None = Field(default=None, pattern=NAME)
    lang: Literal["tg", "ru", "en"] | None = None
    script: Literal["cyrillic", "plain", "latin"] | None = None
    topics: list[Literal["training", "legal_aid", "health", "events"]] | None = None  # subscribe: default all
    topic: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_.]*$")
    keywords: list[str] = []
    fact: bool = False
    source: str | None = None
    reviewed: dt.date | None = None
    verify: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> NodeSpec:
        kinds = [k for k in ("say", "parts", "ask") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a node needs exactly one of say, parts or ask (found {kinds or 'none'})")
        if self.ask is not None and (self.save is None or self.next is None or self.invalid is None):
            raise ValueError("an ask node needs save, next and invalid")
        if self.ask is None and (self.save or self.next or self.invalid):
            raise ValueError("save, next and invalid belong to ask nodes")
        if self.topics is not None and self.do != "subscribe":
            raise ValueError("topics belong to do: subscribe")
        needs = {"escalate": ("reason",), "set_language": ("lang",), "set_script": ("script",)}
        for field_name in needs.get(self.do or "", ()):
            if getattr(self, field_name) is None:
                raise ValueError(f"do: {self.do} needs {field_name}")
        return self


class FlowSpec(_Spec):
    flow: str = Field(pattern=NAME)
    title: str
    start: str = Field(pattern=NAME)
    nodes: dict[str, NodeSpec] = Field(min_length=1)
    strings: dict[str, str] = {}


class WordsSpec(_Spec):
    menu: list[str]
    back: list[str]
    language: list[str]
    help: list[str]
    erase: list[str]
    stop: list[str]
    start: list[str]
    clear: list[str] = []
    news: list[str] = []  # a message that is exactly one of these opens the news subscription screen
    erase_phrases: list[str] = []  # "delete my data" anywhere in her message (then confirmed)
    languages: dict[Literal["tg", "ru", "en"], str]
    language_names: dict[Literal["tg", "ru", "en"], list[str]] = {}  # other ways to name a language


class ServiceSpec(_Spec):
    name: str
    number: str | None = Field(default=None, pattern=r"^[0-9 ()+\-]+$")
    ask_at: str | None = None
    source: str
    reviewed: dt.date
    verify: bool = False
    districts: list[str] = []
    hours: str | None = None

    @model_validator(mode="after")
    def _reachable(self) -> ServiceSpec:
        if self.number is None and self.ask_at is None:
            raise ValueError("a service without a number needs ask_at (where to ask instead)")
        return self


class DirectorySpec(_Spec):
    services: dict[str, ServiceSpec]


class DistrictSpec(_Spec):
    names: dict[Literal["tg", "ru", "en"], str]
    region: Literal["sughd", "khatlon", "gbao", "drs", "dushanbe"]
    old_names: list[str] = []


class DistrictsSpec(_Spec):
    districts: dict[str, DistrictSpec]


Lines = dict[tuple[str | int, ...], int]
M = TypeVar("M", bound=BaseModel)


def read_yaml(path: Path) -> tuple[Any, Lines]:
    """Parse a YAML file; return its data and the line (1-based) of every key and list item."""
    return parse_yaml(path.read_text(encoding="utf-8"), path.name)


def parse_yaml(text: str, name: str) -> tuple[Any, Lines]:
    """Parse YAML text; return its data and the line (1-based) of every key and list item."""
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise FlowError([Problem(name, line, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from exc
    lines: Lines = {}
    if root is not None:
        _walk(root, (), lines)
    return data, lines


def _walk(node: yaml.Node, path: tuple[str | int, ...], lines: Lines) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, str(key.value))
            lines[child] = key.start_mark.line + 1
            _walk(value, child, lines)
            lines[child] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines)


def line_of(lines: Lines, path: tuple[str | int, ...]) -> int:
    """The line of the deepest known part of `path`."""
    for cut in range(len(path), -1, -1):
        if path[:cut] in lines:
            return lines[path[:cut]]
    return 1


def validate(model: type[M], data: Any, lines: Lines, file: str) -> M:
    """Validate `data` as `model`, turning every error into a Problem with its line."""
    if not isinstance(data, dict):
        raise FlowError([Problem(file, 1, "expected a mapping at the top level")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(p if isinstance(p, int) else str(p) for p in error["loc"])
            where = ".".join(str(p) for p in loc) or "(top)"
            problems.append(Problem(file, line_of(lines, loc), f"{where}: {error['msg']}"))
        raise FlowError(problems) from exc
