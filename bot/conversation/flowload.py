"""Load flow files and data files into one immutable, validated FlowSet.

Loading either yields a complete FlowSet or raises FlowError listing every problem with file and line:
a corrupt flow file stops start-up, it never leaves a half-loaded bot.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from pydantic import BaseModel

from bot.conversation.flows import (
    AWAY_NODE,
    MAIN_FLOW,
    SAFETY_FLOW,
    SYSTEM_NODES,
    SYSTEM_STRINGS,
    Action,
    District,
    FlowSet,
    Node,
    NodeOption,
    Service,
    Words,
)
from bot.conversation.flowspec import (
    DATA_FILES,
    DirectorySpec,
    DistrictsSpec,
    FlowError,
    FlowSpec,
    Lines,
    NodeSpec,
    Problem,
    WordsSpec,
    line_of,
    read_yaml,
    validate,
)
from bot.conversation.i18n import Translations
from bot.conversation.text import fold, fold_message
from bot.conversation.triage import CATEGORIES, LEXICON_FILE, Lexicon, load_lexicon

LONE_ZERO = re.compile(r"(?<![\d/.,])0(?![\d/.,])")
NOT_FLOWS = ("canned.yaml",)  # beside the flows, but read by the console (bot/cases/canned.py)


def load_flowset(
    flows_dir: Path,
    translations: Translations,
    *,
    idle_reset: dt.timedelta = dt.timedelta(days=14),
    service_is_free: bool = False,
) -> FlowSet:
    """Read every file in `flows_dir` and compile it; raise FlowError with every problem found.

    `service_is_free`: the deployment says the service costs her nothing (the greeting may say so).
    """
    problems: list[Problem] = []
    specs: list[tuple[str, FlowSpec, Lines]] = []
    data_specs: dict[str, tuple[object, Lines]] = {}
    if not flows_dir.is_dir():
        raise FlowError([Problem(str(flows_dir), 0, "flows folder not found")])
    files = sorted(p for p in flows_dir.glob("*.yaml") if p.name not in NOT_FLOWS)
    for path in files:
        if path.name == LEXICON_FILE:
            continue  # read by load_lexicon below
        try:
            data, lines = read_yaml(path)
            if path.name in DATA_FILES:
                models: dict[str, type[BaseModel]] = {
                    "words.yaml": WordsSpec,
                    "directory.yaml": DirectorySpec,
                    "districts.yaml": DistrictsSpec,
                }
                model = models[path.name]
                data_specs[path.name] = (validate(model, data, lines, path.name), lines)
            else:
                specs.append((path.name, validate(FlowSpec, data, lines, path.name), lines))
        except FlowError as exc:
            problems.extend(exc.problems)
    for name in DATA_FILES:
        if name not in data_specs and not any(p.file == name for p in problems):
            problems.append(Problem(name, 0, "missing data file"))
    triage = _triage(flows_dir, problems)
    if problems or triage is None:
        raise FlowError(problems)
    words = data_specs["words.yaml"][0]
    directory = data_specs["directory.yaml"][0]
    districts = data_specs["districts.yaml"][0]
    assert isinstance(words, WordsSpec)
    assert isinstance(directory, DirectorySpec)
    assert isinstance(districts, DistrictsSpec)
    flows = _compile(specs, words, directory, districts, translations, triage, idle_reset, files)
    return replace(flows, service_is_free=service_is_free)


def _compile(
    specs: list[tuple[str, FlowSpec, Lines]],
    words: WordsSpec,
    directory: DirectorySpec,
    districts: DistrictsSpec,
    translations: Translations,
    triage: Lexicon,
    idle_reset: dt.timedelta,
    files: list[Path],
) -> FlowSet:
    problems: list[Problem] = []
    nodes: dict[str, Node] = {}
    titles: dict[str, str] = {}
    starts: dict[str, str] = {}
    strings: dict[str, str] = {}
    flow_files: dict[str, str] = {}
    for file, spec, lines in specs:
        if spec.flow in flow_files:
            problems.append(
                Problem(
                    file, line_of(lines, ("flow",)), f"flow {spec.flow!r} is also in {flow_files[spec.flow]}"
                )
            )
            continue
        flow_files[spec.flow] = file
        titles[spec.flow] = spec.title
        starts[spec.flow] = f"{spec.flow}.{spec.start}"
        strings.update(spec.strings)
        if spec.start not in spec.nodes:
            problems.append(Problem(file, line_of(lines, ("start",)), f"start node {spec.start!r} not found"))
        for name, node_spec in spec.nodes.items():
            nodes[f"{spec.flow}.{name}"] = _node(spec.flow, name, node_spec, file, lines)
    known_services = set(directory.services)
    for node in nodes.values():
        problems.extend(_node_problems(node, nodes, known_services, flow_files, specs))
    if MAIN_FLOW not in flow_files:
        problems.append(Problem("main.yaml", 0, "the main flow is missing"))
    else:
        main_file = flow_files[MAIN_FLOW]
        for name in SYSTEM_NODES:
            if f"{MAIN_FLOW}.{name}" not in nodes:
                problems.append(Problem(main_file, 1, f"the main flow needs a node {name!r}"))
        for key in SYSTEM_STRINGS:
            if key not in strings:
                problems.append(Problem(main_file, 1, f"strings: needs {key!r}"))
    problems.extend(_safety_problems(nodes, flow_files))
    problems.extend(_keyword_clashes(nodes))
    if problems:
        raise FlowError(problems)
    district_map = {
        key: District(
            id=key,
            names=MappingProxyType({str(k): v for k, v in d.names.items()}),
            region=d.region,
            old_names=tuple(d.old_names),
        )
        for key, d in districts.districts.items()
    }
    return FlowSet(
        nodes=MappingProxyType(nodes),
        titles=MappingProxyType(titles),
        starts=MappingProxyType(starts),
        strings=MappingProxyType(strings),
        words=_words(words),
        directory=MappingProxyType(
            {
                key: Service(
                    key, s.name, s.number, s.ask_at, s.source, s.reviewed, s.verify, tuple(s.districts)
                )
                for key, s in directory.services.items()
            }
        ),
        districts=MappingProxyType(district_map),
        district_names=MappingProxyType(_district_names(district_map)),
        keywords=tuple((kw, node.ref) for node in nodes.values() for kw in node.keywords),
        translations=translations,
        triage=triage,
        idle_reset=idle_reset,
        files=tuple(p.name for p in files),
    )


def _triage(flows_dir: Path, problems: list[Problem]) -> Lexicon | None:
    """The crisis triage rules; their problems join the others (a missing file is one too)."""
    try:
        return load_lexicon(flows_dir / LEXICON_FILE)
    except FlowError as exc:
        problems.extend(exc.problems)
        return None


def _node(flow: str, name: str, spec: NodeSpec, file: str, lines: Lines) -> Node:
    def target(go: str) -> str:
        return go if "." in go else f"{flow}.{go}"

    action = None
    if spec.do is not None:
        action = Action(
            spec.do,
            queue=spec.queue,
            reason=spec.reason,
            priority=spec.priority or "normal",
            lang=spec.lang,
            script=spec.script,
            topics=tuple(spec.topics or ()),
        )
    texts = tuple(spec.parts) if spec.parts is not None else (spec.say or spec.ask or "",)
    return Node(
        ref=f"{flow}.{name}",
        file=file,
        line=line_of(lines, ("nodes", name)),
        texts=texts,
        options=tuple(
            NodeOption(o.id or o.go.replace(".", "_"), o.label, target(o.go), o.channel, o.when)
            for o in spec.options
        ),
        ask=spec.ask is not None,
        save=spec.save,
        next=target(spec.next) if spec.next else None,
        invalid=spec.invalid,
        services=tuple(spec.services),
        listing=spec.listing,
        action=action,
        topic=spec.topic,
        keywords=tuple(dict.fromkeys(k for k in (fold(w) for w in spec.keywords) if k)),
        # A question's numbers are examples of an answer ("for example 18-21"), not facts.
        fact=spec.fact or bool(spec.services) or (spec.ask is None and any(map(_states_a_number, texts))),
        source=spec.source,
        reviewed=spec.reviewed,
        verify=spec.verify,
        danger=spec.danger,
    )


def _states_a_number(text: str) -> bool:
    """Whether a text states a number (an amount, an article, a share); "0" alone is the menu key."""
    return any(ch.isdigit() for ch in LONE_ZERO.sub("", text))


def _node_problems(
    node: Node,
    nodes: Mapping[str, Node],
    services: set[str],
    flow_files: Mapping[str, str],
    specs: list[tuple[str, FlowSpec, Lines]],
) -> list[Problem]:
    lines = next(lines for file, _, lines in specs if file == node.file)
    name = node.ref.split(".", 1)[1]
    problems = []

    def at(*path: str | int) -> int:
        return line_of(lines, ("nodes", name, *path))

    seen: set[str] = set()
    for index, option in enumerate(node.options):
        if option.target not in nodes:
            problems.append(
                Problem(
                    node.file,
                    at("options", index),
                    f"{node.ref}: option leads to unknown node {option.target!r}",
                )
            )
        if option.id in seen:
            problems.append(
                Problem(node.file, at("options", index), f"{node.ref}: two options have the id {option.id!r}")
            )
        seen.add(option.id)
    if node.next is not None and node.next not in nodes:
        problems.append(Problem(node.file, at("next"), f"{node.ref}: next is unknown node {node.next!r}"))
    for index, service in enumerate(node.services):
        if service not in services:
            problems.append(
                Problem(
                    node.file,
                    at("services", index),
                    f"{node.ref}: unknown service {service!r} (not in directory.yaml)",
                )
            )
    if node.fact and (node.source is None or node.reviewed is None):
        problems.append(Problem(node.file, at(), f"{node.ref}: a fact node needs source and reviewed"))
    if node.danger and node.services[:1] != ("emergency",):
        problems.append(
            Problem(node.file, at("services"), f"{node.ref}: a danger screen lists emergency (112) first")
        )
    return problems


def _safety_problems(nodes: Mapping[str, Node], flow_files: Mapping[str, str]) -> list[Problem]:
    """A danger screen for every triage category, and words for when counsellors are away."""
    problems = []
    safety_file = flow_files.get(SAFETY_FLOW, f"{SAFETY_FLOW}.yaml")
    for category in CATEGORIES:
        node = nodes.get(f"{SAFETY_FLOW}.{category}")
        if node is None or not node.danger:
            problems.append(
                Problem(safety_file, 1, f"needs a node {category!r} with danger: true (triage category)")
            )
    escalates = any(n.action is not None and n.action.kind == "escalate" for n in nodes.values())
    if escalates and AWAY_NODE not in nodes:
        problems.append(Problem(flow_files.get("counsellor", "counsellor.yaml"), 1, f"needs {AWAY_NODE}"))
    return problems


def _keyword_clashes(nodes: Mapping[str, Node]) -> list[Problem]:
    owner: dict[str, Node] = {}
    problems = []
    for node in nodes.values():
        for keyword in node.keywords:
            other = owner.setdefault(keyword, node)
            if other is not node:
                problems.append(
                    Problem(
                        node.file, node.line, f"{node.ref}: keyword {keyword!r} also leads to {other.ref}"
                    )
                )
    return problems


def _words(spec: WordsSpec) -> Words:
    def folded(words: list[str]) -> frozenset[str]:
        return frozenset(k for k in (fold_message(w) for w in words) if k)

    return Words(
        menu=folded(spec.menu),
        back=folded(spec.back),
        language=folded(spec.language),
        help=folded(spec.help),
        erase=folded(spec.erase),
        stop=folded(spec.stop),
        start=folded(spec.start),
        clear=folded(spec.clear),
        news=folded(spec.news),
        languages=MappingProxyType({str(k): v for k, v in spec.languages.items()}),
        erase_phrases=tuple(sorted(folded(spec.erase_phrases))),
        language_names=MappingProxyType(
            {
                fold(name): str(lang)
                for lang, names in [(k, [v]) for k, v in spec.languages.items()]
                + list(spec.language_names.items())
                for name in names
                if fold(name)
            }
        ),
    )


def _district_names(districts: Mapping[str, District]) -> dict[str, str]:
    names: dict[str, str] = {}
    for district in districts.values():
        for name in (*district.names.values(), *district.old_names, district.id):
            key = fold(name)
            if key:
                names.setdefault(key, district.id)
    return names
