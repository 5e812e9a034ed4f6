"""`hamroh flows check`: everything wrong with the content, each with file and line.

Loading already refuses broken structure (unknown nodes, bad fields, facts without a source). This adds what
a bot could run with but a woman should never meet: unreachable nodes, SMS screens over the budget,
strings missing from a catalogue, translations whose numbers differ from the English, triage examples
that the triage rules get wrong.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from bot.cases import canned
from bot.channels import sms
from bot.channels.telegram import CALLBACK_DATA_LIMIT
from bot.conversation.flows import AWAY_NODE, MAIN_FLOW, SAFETY_FLOW, SYSTEM_NODES, FlowSet, Node
from bot.conversation.flowspec import Problem, read_yaml
from bot.conversation.i18n import msgids_with_lines
from bot.conversation.listings import node_listing
from bot.conversation.model import NEWS_TOPICS, OFFERED_LANGUAGES, SOURCE_KEY, Course, Reply, Script, Session
from bot.conversation.screens import WELCOME_FREE, brief, not_understood, safety, screen, welcome
from bot.conversation.text import fold
from bot.conversation.triage import CATEGORIES
from bot.conversation.triage import lint as triage_lint

NUMBER = re.compile(r"\d+(?:[.,/]\d+)*")
SCRIPTS: tuple[Script, ...] = ("cyrillic", "plain", "latin")
# At least this share of each language's SMS screens must fit one segment in Cyrillic (the costliest
# letters): many women pay for every SMS, and a screen that fits one is also quicker to read.
ONE_SEGMENT_SHARE = 0.6
# What a lock screen shows of a message: its opening. These words there could put her in danger if
# someone else sees her phone (any language; matched folded, as stems).
LOCK_SCREEN_CHARS = 40
ALARMING_WORDS = (
    "violence",
    "abuse",
    "crisis",
    "suicide",
    "rape",
    "насили",
    "кризис",
    "суицид",
    "самоубий",
    "изнасил",
    "избива",
    "зӯровар",
    "бӯҳрон",
    "худкуш",
    "таҷовуз",
)
EMERGENCY = "emergency"  # the directory entry of 112: first on every danger screen
# Screens filled from the database are checked with courses of ordinary length (titles are cut on SMS
# option lines): more courses near her than one screen lists, one of them hers, with a partner who asks
# for both her phone and her name.
EXAMPLE_DISTRICT = "bokhtar"
EXAMPLE_COURSES = (
    Course(
        {"tg": "Дӯзандагӣ ва тарроҳии либос", "ru": "Швейное дело и дизайн одежды", "en": "Sewing"},
        EXAMPLE_DISTRICT,
        dt.date(2027, 1, 11),
        id=1,
        place="Бохтар, кӯчаи Айнӣ 12",
        ends=dt.date(2027, 2, 28),
        capacity=10,
        places_left=3,
        partner="Ташкилоти Занон",
        partner_fields=("phone", "name"),
    ),
    *(
        Course(
            {"tg": f"Ҳисобдории оилавӣ ва пасандоз {n}", "ru": f"Семейный бюджет и сбережения {n}"},
            None,
            id=n,
        )
        for n in (2, 3, 4)
    ),
    Course({"tg": "Нонпазӣ", "ru": "Выпечка", "en": "Baking"}, None, id=5, standing="waiting"),
)


@dataclass(frozen=True)
class Fact:
    """A fact the deploying organisation must still confirm."""

    where: str
    what: str
    source: str


@dataclass(frozen=True)
class Share:
    """How many of a language's SMS screens, in one choice of letters, fit one segment."""

    lang: str
    script: Script
    single: int
    total: int

    @property
    def ratio(self) -> float:
        return self.single / self.total if self.total else 1.0

    def __str__(self) -> str:
        one = f"{self.ratio:.0%} of SMS screens in one segment ({self.single}/{self.total})"
        return f"{self.lang} {self.script}: {one}"


def check(
    flows: FlowSet, flows_dir: Path, *, budget: int = 2, one_segment_share: float = ONE_SEGMENT_SHARE
) -> list[Problem]:
    """Every problem of a loaded flow set."""
    problems = list(unreachable(flows))
    problems.extend(untranslated(flows, flows_dir))
    problems.extend(over_budget(flows, budget))
    problems.extend(too_few_single(flows, one_segment_share))
    problems.extend(alarming_openings(flows))
    problems.extend(danger_screens(flows))
    problems.extend(long_keys(flows))
    problems.extend(triage_lint(flows.triage))  # its examples and near-misses, tried
    problems.extend(canned_problems(flows_dir))
    return problems


def canned_problems(flows_dir: Path) -> list[Problem]:
    """What is wrong with the counsellors' canned replies, if the file is there."""
    path = flows_dir / canned.FILE_NAME
    if not path.exists():
        return []
    try:
        canned.load(path)
    except canned.CannedError as exc:
        return [Problem(canned.FILE_NAME, 0, str(exc).removeprefix(f"{canned.FILE_NAME}: "))]
    return []


def unreachable(flows: FlowSet) -> Iterator[Problem]:
    """Nodes she cannot reach from the main menu by choosing options."""
    # The engine itself leads to danger screens (on danger words) and to the away screen (after hours).
    reached_by_engine = [f"{SAFETY_FLOW}.{category}" for category in CATEGORIES] + [AWAY_NODE, WELCOME_FREE]
    roots = [f"{MAIN_FLOW}.{name}" for name in SYSTEM_NODES] + [
        r for r in reached_by_engine if r in flows.nodes
    ]
    seen = set(roots)
    queue = deque(roots)
    while queue:
        node = flows.nodes[queue.popleft()]
        for target in (
            [o.target for o in node.options] + ([node.next] if node.next else []) + led_by(flows, node)
        ):
            if target not in seen:
                seen.add(target)
                queue.append(target)
    for ref, node in flows.nodes.items():
        if ref not in seen:
            yield Problem(node.file, node.line, f"{ref}: unreachable from the main menu")


def led_by(flows: FlowSet, node: Node) -> list[str]:
    """Nodes the engine leads to from `node` beyond its options: a listed course opens the course's
    screen; enrolling asks what the partner needs first."""
    if node.listing in ("courses", "mine"):
        course = node_listing(flows, "course")
        return [course.ref] if course else []
    if node.action is not None and node.action.kind == "enrol":
        return [n.ref for n in flows.nodes.values() if n.ask and (n.save or "").startswith("enrol_")]
    return []


def untranslated(flows: FlowSet, flows_dir: Path) -> Iterator[Problem]:
    """Msgids without a translation, and translations whose numbers differ from the English."""
    for file in flows.files:
        data, lines = read_yaml(flows_dir / file)
        for line, msgid in msgids_with_lines(data, lines):
            for lang in OFFERED_LANGUAGES:
                if not flows.translations.has(lang, msgid):
                    yield Problem(file, line, f"no {lang} translation for {msgid!r}")
                elif numbers(flows.text(lang, msgid)) != numbers(msgid):
                    yield Problem(file, line, f"{lang} translation of {msgid!r} has other numbers")


def numbers(text: str) -> list[str]:
    """The numbers in a text, in order ("1/4", "150", "3,000")."""
    return sorted(NUMBER.findall(text))


def screens_of(flows: FlowSet, lang: str) -> Iterator[tuple[Node | None, str, Reply]]:
    """Every screen the bot can show in `lang`: each part of each node, sources, and short answers."""
    yield None, "welcome", welcome(flows)
    for node in flows.nodes.values():
        session = Session(lang=lang, node=node.ref)
        courses: tuple[Course, ...] = ()
        if node.listing:
            session = Session(lang=lang, node=node.ref, district=EXAMPLE_DISTRICT, course=1).with_news(
                NEWS_TOPICS
            )
            courses = EXAMPLE_COURSES
        for part in range(len(node.texts)):
            shown = (
                safety(flows, session, node) if node.danger else screen(flows, session, node, part, courses)
            )
            yield node, f"part {part + 1}", shown
        if node.listing:  # and as she sees it when nothing is listed (no course near her, none of hers)
            yield node, "empty", screen(flows, replace(session, news=(), subscribed=False), node, 0, ())
        if node.fact and node.source:
            text = f"{flows.text(lang, flows.strings['source_is'])} {flows.text(lang, node.source)}"
            yield node, "source", Reply(text)
        yield node, "not understood", not_understood(flows, session, node)
        if node.ask and node.invalid:
            yield node, "invalid answer", brief(flows, session, node.invalid, node)


def over_budget(flows: FlowSet, budget: int) -> Iterator[Problem]:
    """SMS screens (in Cyrillic, the costliest letters) longer than `budget` segments, danger screens too."""
    for lang in OFFERED_LANGUAGES:
        for node, what, reply in screens_of(flows, lang):
            cost = sms.cost(sms.render(reply))
            if cost.segments > budget:
                file, line, ref = (node.file, node.line, node.ref) if node else ("main.yaml", 1, "welcome")
                yield Problem(
                    file,
                    line,
                    f"{ref} ({what}, {lang}): SMS of {cost.segments} segments "
                    f"({cost.chars} characters, {cost.encoding}) is over the budget "
                    f"of {budget}",
                )


def shares(flows: FlowSet) -> list[Share]:
    """The one-segment share of the SMS screens per language and choice of letters."""
    found = []
    for lang in OFFERED_LANGUAGES:
        replies = [reply for _, _, reply in screens_of(flows, lang)]
        for script in SCRIPTS:
            single = sum(sms.cost(sms.render(r, script)).segments == 1 for r in replies)
            found.append(Share(lang, script, single, len(replies)))
    return found


def too_few_single(flows: FlowSet, minimum: float) -> Iterator[Problem]:
    """Languages whose SMS screens fit one segment in Cyrillic too rarely."""
    for share in shares(flows):
        if share.script == "cyrillic" and share.ratio < minimum:
            yield Problem("flows", 0, f"{share}: below {minimum:.0%}; tighten the longest screens")


def alarming_openings(flows: FlowSet) -> Iterator[Problem]:
    """Screens whose opening words, as a lock screen shows them, name violence, a crisis or self-harm."""
    stems = {fold(word): word for word in ALARMING_WORDS}
    for lang in ("en", *OFFERED_LANGUAGES):
        for node, what, reply in screens_of(flows, lang):
            opening = fold(reply.text.splitlines()[0][:LOCK_SCREEN_CHARS] if reply.text else "")
            found = next((word for stem, word in stems.items() if stem in opening), None)
            if found is not None:
                file, line, ref = (node.file, node.line, node.ref) if node else ("main.yaml", 1, "welcome")
                yield Problem(
                    file,
                    line,
                    f"{ref} ({what}, {lang}): the opening words name {found!r}; a lock screen shows them",
                )


def danger_screens(flows: FlowSet) -> Iterator[Problem]:
    """Danger screens: 112 is the first number she reads, and there is no "Source" option."""
    for node in flows.nodes.values():
        if not node.danger:
            continue
        if not node.services or node.services[0] != EMERGENCY:
            yield Problem(node.file, node.line, f"{node.ref}: a danger screen lists {EMERGENCY} (112) first")
        for lang in OFFERED_LANGUAGES:
            reply = safety(flows, Session(lang=lang, node=node.ref), node)
            first = NUMBER.search(reply.text)
            if first is None or first.group() != flows.directory[EMERGENCY].number:
                yield Problem(node.file, node.line, f"{node.ref} ({lang}): the first number is not 112")
            if any(o.key.endswith(f":{SOURCE_KEY}") for o in reply.options):
                yield Problem(node.file, node.line, f"{node.ref}: a danger screen offers no Source option")


def long_keys(flows: FlowSet) -> Iterator[Problem]:
    """Option keys over Telegram's 64-byte callback_data limit."""
    for node in flows.nodes.values():
        for option in screen(flows, Session(lang="en", node=node.ref), node, len(node.texts) - 1, ()).options:
            if len(option.key.encode("utf-8")) > CALLBACK_DATA_LIMIT:
                yield Problem(
                    node.file,
                    node.line,
                    f"{node.ref}: button key {option.key!r} is over {CALLBACK_DATA_LIMIT} bytes",
                )


def pending(flows: FlowSet) -> list[Fact]:
    """Facts marked `verify: true`: the deploying organisation confirms each before launch."""
    facts = [
        Fact(f"{n.file}:{n.line} {n.ref}", n.texts[0], n.source or "")
        for n in flows.nodes.values()
        if n.verify
    ]
    facts.extend(
        Fact(f"directory.yaml {s.id}", f"{s.name}: {s.number or s.ask_at}", s.source)
        for s in flows.directory.values()
        if s.verify
    )
    return facts
