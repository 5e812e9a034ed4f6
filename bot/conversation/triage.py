"""Crisis triage: whether a message she writes is urgent (suicide, violence, child, sexual, trafficking).

Pure: a compiled lexicon and a text in, a verdict out. The rules are data in `flows/triage.yaml`, written
by counsellors (that file explains the rule language). Matching works on `text.fold` keys, so Tajik typed
with or without its letters, in Latin letters, and Russian with е for ё all meet; each word of a rule matches
the start of a word of the message, so one stem covers Russian and Tajik endings.

Recall matters more than precision here: a missed cry for help costs more than a counsellor reading a
message that turns out to be fine. Rules still carry `unless` phrases for idioms ("убить время").
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field

from bot.conversation.flowspec import FlowError, Lines, Problem, line_of, read_yaml, validate
from bot.conversation.text import fold

Category = Literal["suicide", "violence", "child", "sexual", "trafficking"]
CATEGORIES: Final[tuple[str, ...]] = get_args(Category)
LEXICON_FILE: Final = "triage.yaml"
K = TypeVar("K", str, int)

# A stem shorter than this (after folding) would start too many words: it matches whole words only.
SHORT: Final = 3
# A phrase with at least this many letters also matches when she splits or joins its words ("нехочужить",
# "худ кушӣ"); shorter ones would match by accident across word boundaries.
JOINED: Final = 5


@dataclass(frozen=True)
class Verdict:
    """Why a message is urgent: its category and the id of the rule that fired."""

    category: str
    rule: str


@dataclass(frozen=True)
class Term:
    """A word or phrase of a rule, folded: each word matches a word start, or the whole word if `whole`."""

    words: tuple[str, ...]
    whole: tuple[bool, ...]
    joined: str  # the letters without spaces, or "" when too short to match split or joined words


@dataclass(frozen=True)
class Rule:
    """A compiled rule; its term sets hold indexes into `Lexicon.terms`."""

    id: str
    category: str
    line: int
    any: frozenset[int]
    with_: frozenset[int]
    unless: frozenset[int]
    within: int
    examples: tuple[tuple[int, str], ...]  # (line, message) that this rule is written to catch


# A term as the word-by-word pass meets it: (term id, first word, whole first word only, number of words).
Start = tuple[int, str, bool, int]


@dataclass(frozen=True)
class Lexicon:
    """The compiled, immutable triage rules, indexed for one pass over a message."""

    file: str
    rules: tuple[Rule, ...]
    terms: tuple[Term, ...]
    normal: tuple[tuple[int, str], ...]  # (line, message): near-misses that must stay normal
    by_start: Mapping[str, tuple[Start, ...]]  # first SHORT letters of a term's first word -> terms
    by_joined: Mapping[str, tuple[int, ...]]  # first JOINED letters of a term's joined form -> terms
    rules_of: Mapping[int, tuple[int, ...]]  # term -> rules it can fire (as an `any` term), in order


def classify(lexicon: Lexicon, text: str) -> Verdict | None:
    """The verdict of the first rule (in file order) that fires on `text`, or None when it looks normal."""
    return classify_folded(lexicon, fold(text))


def classify_folded(lexicon: Lexicon, folded: str) -> Verdict | None:
    """`classify` for a text already folded with `text.fold`: folding costs more than the rules do."""
    words = folded.split()
    if not words:
        return None
    found = _find(lexicon, words)
    candidates = sorted({rule for term in found for rule in lexicon.rules_of.get(term, ())})
    for index in candidates:
        rule = lexicon.rules[index]
        if _fires(rule, found):
            return Verdict(rule.category, rule.id)
    return None


def load_lexicon(path: Path) -> Lexicon:
    """Read and compile a triage file; raise FlowError naming file, line and problem for each mistake."""
    if not path.is_file():
        raise FlowError([Problem(path.name, 0, "missing data file")])
    data, lines = read_yaml(path)
    spec = validate(TriageSpec, data, lines, path.name)
    return _compile(spec, lines, path.name)


def lint(lexicon: Lexicon) -> list[Problem]:
    """What a loaded lexicon gets wrong by its own examples, and terms that can never fire."""
    problems = []
    for rule in lexicon.rules:
        for term in rule.any & rule.unless:
            shown = " ".join(lexicon.terms[term].words)
            problems.append(
                Problem(lexicon.file, rule.line, f"{rule.id}: {shown!r} is in both any and unless")
            )
        for line, example in rule.examples:
            verdict = classify(lexicon, example)
            if verdict is None:
                problems.append(Problem(lexicon.file, line, f"{rule.id}: example {example!r} stays normal"))
            elif verdict.category != rule.category:
                problems.append(
                    Problem(
                        lexicon.file,
                        line,
                        f"{rule.id}: example {example!r} is taken as {verdict.category} by {verdict.rule}",
                    )
                )
    for line, example in lexicon.normal:
        verdict = classify(lexicon, example)
        if verdict is not None:
            problems.append(
                Problem(lexicon.file, line, f"normal: {example!r} is taken as urgent by {verdict.rule}")
            )
    return problems


# --- the file's schema -------------------------------------------------------------------------------------


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RuleSpec(_Spec):
    id: str = Field(pattern=r"^[a-z]+\.[a-z0-9_]+$")
    category: Category
    any: list[str] = Field(min_length=1)
    with_: list[str] = Field(default=[], alias="with")
    within: int | None = Field(default=None, ge=1, le=12)
    unless: list[str] = []
    examples: list[str] = []


class TriageSpec(_Spec):
    within: int = Field(default=3, ge=1, le=12)
    lists: dict[str, list[str]] = {}
    rules: list[RuleSpec] = Field(min_length=1)
    normal: list[str] = []


# --- compiling ---------------------------------------------------------------------------------------------


class _Terms:
    """Terms made once each, however many rules share them (a shared list is matched once per message)."""

    def __init__(self) -> None:
        self.index: dict[Term, int] = {}

    def add(self, term: Term) -> int:
        return self.index.setdefault(term, len(self.index))


def _compile(spec: TriageSpec, lines: Lines, file: str) -> Lexicon:
    problems: list[Problem] = []
    terms = _Terms()
    lists = _lists(spec, lines, file, problems)
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for index, rule in enumerate(spec.rules):
        where = ("rules", index)
        line = line_of(lines, (*where, "id"))
        if rule.id in seen:
            problems.append(Problem(file, line, f"rule id {rule.id!r} is also on line {seen[rule.id]}"))
        seen.setdefault(rule.id, line)
        if rule.id.split(".", 1)[0] != rule.category:
            problems.append(Problem(file, line, f"rule id {rule.id!r} must start with {rule.category}."))

        def compiled(key: str, entries: list[str], at: tuple[str | int, ...] = where) -> frozenset[int]:
            ids: set[int] = set()
            for number, entry in enumerate(entries):
                entry_line = line_of(lines, (*at, key, number))
                for term in _expand(entry, lists, file, entry_line, problems):
                    ids.add(terms.add(term))
            return frozenset(ids)

        rules.append(
            Rule(
                id=rule.id,
                category=rule.category,
                line=line,
                any=compiled("any", rule.any),
                with_=compiled("with", rule.with_),
                unless=compiled("unless", rule.unless),
                within=rule.within or spec.within,
                examples=tuple(
                    (line_of(lines, (*where, "examples", n)), text) for n, text in enumerate(rule.examples)
                ),
            )
        )
    if problems:
        raise FlowError(problems)
    return _index(file, rules, tuple(terms.index), spec, lines)


def _lists(spec: TriageSpec, lines: Lines, file: str, problems: list[Problem]) -> dict[str, tuple[Term, ...]]:
    lists: dict[str, tuple[Term, ...]] = {}
    for name, entries in spec.lists.items():
        found: list[Term] = []
        for number, entry in enumerate(entries):
            line = line_of(lines, ("lists", name, number))
            if entry.startswith("@"):
                problems.append(Problem(file, line, f"lists.{name}: a list cannot name another list"))
                continue
            found.extend(_expand(entry, {}, file, line, problems))
        lists[name] = tuple(found)
    return lists


def _expand(
    entry: str, lists: Mapping[str, tuple[Term, ...]], file: str, line: int, problems: list[Problem]
) -> tuple[Term, ...]:
    """The terms an entry stands for: a named list (`@me`) or one word or phrase."""
    if entry.startswith("@"):
        name = entry[1:].strip()
        if name not in lists:
            known = ", ".join(sorted(lists)) or "none"
            problems.append(Problem(file, line, f"unknown list @{name} (lists: {known})"))
            return ()
        return lists[name]
    term = parse_term(entry)
    if term is None:
        problems.append(Problem(file, line, f"{entry!r} has no letters or digits to match"))
        return ()
    return (term,)


def parse_term(entry: str) -> Term | None:
    """A word or phrase as written in triage.yaml: each word folded; a final full stop means whole word."""
    words: list[str] = []
    whole: list[bool] = []
    for part in entry.split():
        folded = fold(part).split()
        words.extend(folded)
        whole.extend(len(word) < SHORT for word in folded)
        if folded and part.endswith("."):
            whole[-1] = True
    if not words:
        return None
    joined = "".join(words)
    return Term(tuple(words), tuple(whole), joined if len(joined) >= JOINED else "")


def _index(file: str, rules: list[Rule], terms: tuple[Term, ...], spec: TriageSpec, lines: Lines) -> Lexicon:
    by_start: dict[str, list[Start]] = {}
    by_joined: dict[str, list[int]] = {}
    rules_of: dict[int, list[int]] = {}
    for number, term in enumerate(terms):
        entry = (number, term.words[0], term.whole[0], len(term.words))
        by_start.setdefault(term.words[0][:SHORT], []).append(entry)
        if term.joined:
            by_joined.setdefault(term.joined[:JOINED], []).append(number)
    for number, rule in enumerate(rules):
        for term_id in rule.any:
            rules_of.setdefault(term_id, []).append(number)
    return Lexicon(
        file=file,
        rules=tuple(rules),
        terms=terms,
        normal=tuple((line_of(lines, ("normal", n)), text) for n, text in enumerate(spec.normal)),
        by_start=MappingProxyType({key: tuple(entries) for key, entries in by_start.items()}),
        by_joined=_frozen(by_joined),
        rules_of=_frozen(rules_of),
    )


def _frozen(table: dict[K, list[int]]) -> Mapping[K, tuple[int, ...]]:
    return MappingProxyType({key: tuple(values) for key, values in table.items()})


# --- matching ----------------------------------------------------------------------------------------------

Span = tuple[int, int]  # words [start, end) of the message


def _find(lexicon: Lexicon, words: list[str]) -> dict[int, list[Span]]:
    """Every place each term matches: word by word, and in the letters with spaces taken out."""
    found: dict[int, list[Span]] = {}
    for start, word in enumerate(words):
        # Most terms are one word: they are decided here, without a call.
        for term_id, first, whole, size in lexicon.by_start.get(word[:SHORT], ()):
            if word != first if whole else not word.startswith(first):
                continue
            if size == 1:
                found.setdefault(term_id, []).append((start, start + 1))
            elif _rest_matches(lexicon.terms[term_id], words, start):
                found.setdefault(term_id, []).append((start, start + size))
    letters = "".join(words)
    starts: list[int] = []
    offset = 0
    for word in words:
        starts.append(offset)
        offset += len(word)
    for start, offset in enumerate(starts):
        for term_id in lexicon.by_joined.get(letters[offset : offset + JOINED], ()):
            term = lexicon.terms[term_id]
            if not letters.startswith(term.joined, offset):
                continue
            stop = offset + len(term.joined)
            end = bisect_left(starts, stop)  # the words up to `stop`: those starting before it
            if term.whole[-1] and stop != len(letters) and (end == len(starts) or starts[end] != stop):
                continue  # a whole last word must end where a word of hers ends
            found.setdefault(term_id, []).append((start, end))
    return found


def _rest_matches(term: Term, words: list[str], start: int) -> bool:
    """Whether the words of `term` after its first (which matched at `start`) follow in the message."""
    end = start + len(term.words)
    if end > len(words):
        return False
    for word, stem, whole in zip(words[start + 1 : end], term.words[1:], term.whole[1:], strict=True):
        if word != stem if whole else not word.startswith(stem):
            return False
    return True


def _fires(rule: Rule, found: Mapping[int, list[Span]]) -> bool:
    hits = _spans(found, rule.any)
    if not hits:
        return False
    blockers = _spans(found, rule.unless)
    needs = _spans(found, rule.with_)
    for hit in hits:
        if any(_apart(hit, other) <= rule.within for other in blockers):
            continue
        if not rule.with_ or any(_apart(hit, other) <= rule.within for other in needs):
            return True
    return False


def _spans(found: Mapping[int, list[Span]], terms: frozenset[int]) -> list[Span]:
    return [span for term, spans in found.items() if term in terms for span in spans]


def _apart(a: Span, b: Span) -> int:
    """How many words apart two matches are: 0 when they overlap, 1 when next to each other."""
    return max(0, b[0] - a[1] + 1, a[0] - b[1] + 1)
