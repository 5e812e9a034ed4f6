"""Flow files: loading refuses broken content with file and line; the check finds what she should not meet."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from types import MappingProxyType

import pytest

from bot.config import ROOT
from bot.conversation.flowload import load_flowset
from bot.conversation.flows import FlowSet
from bot.conversation.flowspec import FlowError
from bot.conversation.i18n import Translations
from bot.conversation.model import Session
from bot.conversation.screens import safety
from bot.conversation.triage import CATEGORIES
from bot.flowcheck import ONE_SEGMENT_SHARE, alarming_openings, check, over_budget, pending, shares

DATA = Path(__file__).parent / "data" / "flows"
NO_TRANSLATIONS = Translations(MappingProxyType({}))
REAL_FILES = sorted(p.name for p in (ROOT / "flows").glob("*.yaml"))


def copy_of_small_flows(tmp_path: Path) -> Path:
    target = tmp_path / f"flows{len(list(tmp_path.iterdir()))}"
    shutil.copytree(DATA, target)
    return target


def problems_after(tmp_path: Path, file: str, old: str, new: str) -> list[str]:
    folder = copy_of_small_flows(tmp_path)
    path = folder / file
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(FlowError) as caught:
        load_flowset(folder, NO_TRANSLATIONS)
    return [str(p) for p in caught.value.problems]


def test_broken_yaml_is_reported_with_its_line(tmp_path: Path) -> None:
    problems = problems_after(tmp_path, "legal.yaml", "  divorce:\n", "  divorce: [\n")
    assert len(problems) == 1
    assert problems[0].startswith("legal.yaml:")
    assert "not valid YAML" in problems[0]


def test_an_option_leading_nowhere_is_reported_with_its_line(tmp_path: Path) -> None:
    problems = problems_after(tmp_path, "legal.yaml", "go: divorce}", "go: divorse}")
    assert problems == ["legal.yaml:9: legal.menu: option leads to unknown node 'legal.divorse'"]


def test_a_fact_without_a_source_is_refused(tmp_path: Path) -> None:
    problems = problems_after(tmp_path, "legal.yaml", "    source: Family Code, art. 81\n", "")
    assert problems == ["legal.yaml:10: legal.alimony: a fact node needs source and reviewed"]


def test_an_unknown_field_and_a_node_without_text_are_reported(tmp_path: Path) -> None:
    problems = problems_after(
        tmp_path, "legal.yaml", "    say: Which question?\n", "    sai: Which question?\n"
    )
    assert any(p.startswith("legal.yaml:6: nodes.menu.sai") for p in problems)
    problems = problems_after(tmp_path, "legal.yaml", "    say: Which question?\n", "")
    assert any(p.startswith("legal.yaml:5:") and "exactly one of say, parts or ask" in p for p in problems)


def test_an_unknown_service_and_a_clashing_keyword_are_reported(tmp_path: Path) -> None:
    problems = problems_after(tmp_path, "legal.yaml", "[emergency, shelter]", "[emergency, helicopter]")
    assert any("unknown service 'helicopter'" in p for p in problems)
    problems = problems_after(tmp_path, "legal.yaml", "[развод, талоқ, ЗАГС]", "[развод, алименты]")
    assert any("keyword 'alimenti' also leads to legal.alimony" in p for p in problems)


def test_a_missing_data_file_stops_loading(tmp_path: Path) -> None:
    folder = copy_of_small_flows(tmp_path)
    (folder / "words.yaml").unlink()
    with pytest.raises(FlowError, match=r"words.yaml:0: missing data file"):
        load_flowset(folder, NO_TRANSLATIONS)


def test_check_reports_unreachable_nodes_missing_translations_and_long_sms(tmp_path: Path) -> None:
    flows = load_flowset(DATA, NO_TRANSLATIONS)
    problems = [str(p) for p in check(flows, DATA)]
    assert "legal.yaml:39: legal.hotlines: unreachable from the main menu" in problems
    assert any(p.startswith("legal.yaml:6: no tg translation for 'Which question?'") for p in problems)
    assert not any("over the budget" in p for p in problems)  # English screens are short
    tajik = Translations(
        MappingProxyType({"tg": {"How can I help?": "Чӣ тавр ба шумо ёрӣ расонам? " * 3}, "ru": {}})
    )
    long = check(load_flowset(DATA, tajik), DATA, budget=1)
    assert any("main.menu (part 1, tg): SMS of 2 segments (124 characters, ucs2)" in str(p) for p in long)


def test_check_finds_a_translation_whose_numbers_differ() -> None:
    wrong = Translations(
        MappingProxyType({"tg": {"For 1 child, a quarter of his income.": "Барои 2 фарзанд"}, "ru": {}})
    )
    problems = [str(p) for p in check(load_flowset(DATA, wrong), DATA)]
    assert any(
        "tg translation of 'For 1 child, a quarter of his income.' has other numbers" in p for p in problems
    )


def test_pending_lists_facts_to_verify() -> None:
    facts = pending(load_flowset(DATA, NO_TRANSLATIONS))
    assert [f.where for f in facts] == ["legal.yaml:10 legal.alimony"]


@pytest.mark.parametrize("file", REAL_FILES)
def test_each_real_flow_file_is_complete(flows: FlowSet, file: str) -> None:
    """Every node reachable, every option leads somewhere, every string translated, every SMS in budget."""
    problems = [str(p) for p in check(flows, ROOT / "flows") if p.file == file]
    assert problems == []


def test_real_content_states_no_phone_number_outside_the_directory(flows: FlowSet) -> None:
    numbers = {s.number for s in flows.directory.values() if s.number}
    for node in flows.nodes.values():
        for text in node.texts:
            for number in numbers:
                assert number not in text.replace(" ", ""), f"{node.ref} writes {number} itself"


def test_flows_check_reports_a_broken_canned_replies_file(tmp_path: Path, flows: FlowSet) -> None:
    shutil.copytree(ROOT / "flows", tmp_path / "flows")
    (tmp_path / "flows" / "canned.yaml").write_text("replies:\n  - {id: x, title: Hi, tg: Салом}\n", "utf-8")
    problems = [str(p) for p in check(flows, tmp_path / "flows")]
    assert any(p.startswith("canned.yaml:0:") and "ru" in p for p in problems), problems


def small_flows_after(tmp_path: Path, file: str, old: str, new: str) -> tuple[FlowSet, Path]:
    folder = copy_of_small_flows(tmp_path)
    path = folder / file
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return load_flowset(folder, NO_TRANSLATIONS), folder


def test_check_refuses_opening_words_a_lock_screen_would_betray(tmp_path: Path) -> None:
    flows, folder = small_flows_after(
        tmp_path, "main.yaml", "say: Settings.", "say: Violence at home? Settings."
    )
    problems = [str(p) for p in check(flows, folder)]
    assert any("main.settings (part 1, en): the opening words name 'violence'" in p for p in problems)


def test_check_refuses_a_danger_screen_whose_first_number_is_not_112(tmp_path: Path) -> None:
    flows, folder = small_flows_after(
        tmp_path, "safety.yaml", 'say: "You matter. Call:"', 'say: "You matter. Call 102 or:"'
    )
    problems = [str(p) for p in check(flows, folder)]
    assert any("safety.suicide (tg): the first number is not 112" in p for p in problems)


def test_check_counts_screens_that_fit_one_sms_and_refuses_too_few() -> None:
    flows = load_flowset(DATA, NO_TRANSLATIONS)
    english = [s for s in shares(flows) if s.script == "cyrillic"]
    assert all(s.total > 0 for s in english)
    assert check(flows, DATA, one_segment_share=1.01)[-1:] != []
    assert any("of SMS screens in one segment" in str(p) for p in check(flows, DATA, one_segment_share=1.01))


def test_every_real_danger_screen_gives_112_first_and_no_source(flows: FlowSet) -> None:
    dangers = [node for node in flows.nodes.values() if node.danger]
    assert {f"safety.{c}" for c in CATEGORIES} <= {n.ref for n in dangers}
    for node in dangers:
        for lang in ("tg", "ru"):
            reply = safety(flows, Session(lang=lang, node=node.ref), node)
            assert re.findall(r"\d+", reply.text)[0] == "112", (node.ref, lang)
            assert not any(o.key.endswith(":source") for o in reply.options), node.ref
            assert "103" not in reply.text


def test_most_real_sms_screens_fit_one_segment_and_none_takes_more_than_two(flows: FlowSet) -> None:
    for share in shares(flows):
        if share.script == "cyrillic":
            assert share.ratio >= ONE_SEGMENT_SHARE, str(share)
    assert list(over_budget(flows, 2)) == []


def test_no_real_screen_opens_with_words_a_lock_screen_would_betray(flows: FlowSet) -> None:
    assert [str(p) for p in alarming_openings(flows)] == []
