"""Crisis triage: what she writes, in any form she writes it, and whether a counsellor must see it first."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path
from types import MappingProxyType

import pytest

from bot.config import ROOT
from bot.conversation.flowload import load_flowset
from bot.conversation.flows import FlowSet
from bot.conversation.flowspec import FlowError
from bot.conversation.i18n import Translations
from bot.conversation.text import fold
from bot.conversation.triage import (
    CATEGORIES,
    LEXICON_FILE,
    Lexicon,
    Verdict,
    classify,
    classify_folded,
    lint,
    load_lexicon,
)
from tests.conftest import run_hamroh

DATA = Path(__file__).parent / "data"
NO_TRANSLATIONS = Translations(MappingProxyType({}))


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    """The real rules of flows/triage.yaml, alone (the rest of the content is not needed)."""
    return load_lexicon(ROOT / "flows" / LEXICON_FILE)


def category(lexicon: Lexicon, text: str) -> str | None:
    verdict = classify(lexicon, text)
    return verdict.category if verdict else None


# Each category in each form she writes in: Tajik, Tajik without its letters, Tajik in Latin letters,
# Russian and English.
EXAMPLES = [
    ("suicide", "tg", "дигар намехоҳам зинда бошам"),
    ("suicide", "tg_plain", "худмро мекушам бас"),
    ("suicide", "tg_latin", "mexoham bimiram"),
    ("suicide", "ru", "не хочу больше жить"),
    ("suicide", "en", "i want to kill myself"),
    ("violence", "tg", "шавҳарам маро мезанад"),
    ("violence", "tg_plain", "аз шавхарам метарсам"),
    ("violence", "tg_latin", "shuyam mara zad"),
    ("violence", "ru", "боюсь он меня убьёт"),
    ("violence", "en", "im afraid he will kill me"),
    ("child", "tg", "кӯдакам гурусна аст хӯрок нест"),
    ("child", "tg_plain", "бачахо гушнаан"),
    ("child", "tg_latin", "kudakam nafas namegirad"),
    ("child", "ru", "дети голодные нечем кормить"),
    ("child", "en", "my daughter is missing"),
    ("sexual", "tg", "хусурам ба ман таҷовуз кард"),
    ("sexual", "tg_plain", "мачбуран бо ман хобид"),
    ("sexual", "tg_latin", "tajovuz kard"),
    ("sexual", "ru", "меня изнасиловали"),
    ("sexual", "en", "he raped me"),
    ("trafficking", "tg", "шиносномаамро гирифтанд намегузоранд равам"),
    ("trafficking", "tg_plain", "мана фурухтан"),
    ("trafficking", "tg_latin", "pasportamro giriftand"),
    ("trafficking", "ru", "забрали паспорт не отпускают"),
    ("trafficking", "en", "they took my passport"),
]


@pytest.mark.parametrize(("expected", "form", "text"), EXAMPLES)
def test_each_danger_is_urgent_in_each_form(lexicon: Lexicon, expected: str, form: str, text: str) -> None:
    assert category(lexicon, text) == expected, form


def test_every_category_and_form_has_an_example() -> None:
    assert {(c, f) for c, f, _ in EXAMPLES} == {
        (c, f) for c in CATEGORIES for f in ("tg", "tg_plain", "tg_latin", "ru", "en")
    }


def test_the_verdict_names_the_rule_that_fired(lexicon: Lexicon) -> None:
    assert classify(lexicon, "муж бьет меня") == Verdict("violence", "violence.beaten")
    assert classify(lexicon, "худкушӣ") == Verdict("suicide", "suicide.words")


@pytest.mark.parametrize(
    "text",
    [
        "he beats the carpet",
        "I'm dying to see my son",
        "the phone is dead",
        "убить время",
        "мурдам аз ханда",
        "мемурам барои писарам",
        "чароғро кушед",
        "шавҳарам занг намезанад",
        "метарсам ки шавҳарам барнамегардад",
        "боюсь что муж не вернется",
        "телефон сдох",
        "сердце бьется быстро",
        "не хочу жить с ним",
        "this heat is killing me",
        "шиносномаи нав чӣ тавр гирифтан мумкин",
        "барои кӯдак алимент чӣ тавр гирифтан мумкин",
        "",
        "🙂",
    ],
)
def test_near_misses_stay_normal(lexicon: Lexicon, text: str) -> None:
    assert classify(lexicon, text) is None


@pytest.mark.parametrize(
    "text",
    [
        "нехочужить",  # joined
        "не хочужить",
        "худ кушӣ",  # split
        "xud kushi",
        "kill my self",
        "killmyself",
        "изна силовал",
        "маромезанад",
    ],
)
def test_split_and_joined_words_are_found(lexicon: Lexicon, text: str) -> None:
    assert classify(lexicon, text) is not None


@pytest.mark.parametrize("text", ["ХУДКУШӢ!!!", "худкуши", "khudkushi", "хyдкушӣ", "Худкушӣ 😢", "худкушї"])
def test_case_marks_latin_and_stray_symbols_do_not_matter(lexicon: Lexicon, text: str) -> None:
    assert category(lexicon, text) == "suicide"


def test_russian_endings_and_misspellings_meet(lexicon: Lexicon) -> None:
    for text in ("он меня убьет", "он меня убъет", "он меня убет", "муж миня избевает", "изнасилывал"):
        assert classify(lexicon, text) is not None, text


def test_recall_on_the_tuning_set_stays_high(lexicon: Lexicon) -> None:
    rows = read_labelled(DATA / "triage" / "tune.tsv")
    urgent = [row for row in rows if row["label"] == "urgent"]
    caught = [row for row in urgent if classify(lexicon, row["text"]) is not None]
    missed = [row["text"] for row in urgent if row not in caught]
    assert len(caught) / len(urgent) >= 0.97, missed


def test_the_labelled_sets_are_as_described() -> None:
    tune = read_labelled(DATA / "triage" / "tune.tsv")
    holdout = read_labelled(DATA / "triage" / "holdout.tsv")
    rows = tune + holdout
    assert len(rows) >= 500
    assert sum(r["label"] == "urgent" for r in rows) >= len(rows) / 3
    assert {r["form"] for r in rows} == {"tg", "tg_plain", "tg_latin", "ru", "en"}
    assert all((r["label"] == "urgent") == (r["category"] in CATEGORIES) for r in rows)
    assert not {r["text"] for r in tune} & {r["text"] for r in holdout}


def test_the_rules_pass_their_own_examples(lexicon: Lexicon) -> None:
    assert [str(p) for p in lint(lexicon)] == []


def test_the_flow_set_carries_the_triage_rules(small_flows: FlowSet) -> None:
    assert classify(small_flows.triage, "муж бьет меня") == Verdict("violence", "violence.beaten")
    assert classify(small_flows.triage, "he beats the carpet") is None


# --- broken files -----------------------------------------------------------------------------------------


def write_lexicon(tmp_path: Path, text: str) -> Path:
    path = tmp_path / LEXICON_FILE
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(FlowError) as caught:
        load_lexicon(path)
    return [str(p) for p in caught.value.problems]


def test_a_broken_triage_file_names_the_line(tmp_path: Path) -> None:
    path = write_lexicon(
        tmp_path,
        "rules:\n"
        "  - id: violence.beaten\n"
        "    category: violence\n"
        "    any: [бьет]\n"
        '    with: ["@him"]\n'
        "  - id: sorrow.words\n"
        "    category: sorrow\n"
        "    any: [ғам]\n",
    )
    problems = problems_of(path)
    assert problems == [
        "triage.yaml:7: rules.1.category: Input should be "
        "'suicide', 'violence', 'child', 'sexual' or 'trafficking'"
    ]
    problems = problems_of(write_lexicon(tmp_path, "\n".join(path.read_text().splitlines()[:5]) + "\n"))
    assert problems == ["triage.yaml:5: unknown list @him (lists: none)"]


def test_a_triage_file_that_is_not_yaml_or_has_a_wordless_entry_is_refused(tmp_path: Path) -> None:
    assert problems_of(write_lexicon(tmp_path, "rules: [\n"))[0].startswith("triage.yaml:2: not valid YAML")
    path = write_lexicon(tmp_path, "rules:\n  - id: child.x\n    category: child\n    any: [бача, '!!']\n")
    assert problems_of(path) == ["triage.yaml:4: '!!' has no letters or digits to match"]
    path = write_lexicon(tmp_path, "rules:\n  - id: child.x\n    category: violence\n    any: [бача]\n")
    assert problems_of(path) == ["triage.yaml:2: rule id 'child.x' must start with violence."]


def test_loading_the_flows_reports_triage_problems_with_the_others(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    shutil.copytree(DATA / "flows", folder)
    path = folder / LEXICON_FILE
    path.write_text(path.read_text(encoding="utf-8").replace('["@me"]', '["@mee"]'), encoding="utf-8")
    with pytest.raises(FlowError) as caught:
        load_flowset(folder, NO_TRANSLATIONS)
    assert [str(p) for p in caught.value.problems] == ["triage.yaml:13: unknown list @mee (lists: me)"]
    path.unlink()
    with pytest.raises(FlowError, match=r"triage.yaml:0: missing data file"):
        load_flowset(folder, NO_TRANSLATIONS)


def test_the_check_names_an_example_the_rules_get_wrong(tmp_path: Path) -> None:
    text = (DATA / "flows" / LEXICON_FILE).read_text(encoding="utf-8")
    text = text.replace("  - he beats the carpet\n", "  - he beats the carpet\n  - муж бьет меня\n")
    text = text.replace("examples: [муж бьет меня]", "examples: [муж бьет меня, муж кричит]")
    problems = [str(p) for p in lint(load_lexicon(write_lexicon(tmp_path, text)))]
    assert problems == [
        "triage.yaml:15: violence.beaten: example 'муж кричит' stays normal",
        "triage.yaml:18: normal: 'муж бьет меня' is taken as urgent by violence.beaten",
    ]


# --- the command ------------------------------------------------------------------------------------------


def hamroh(tmp_path: Path, *args: str, flows_dir: Path) -> subprocess.CompletedProcess[str]:
    absent = f"sqlite:///{tmp_path / 'absent' / 'none.db'}"  # the command must not need a database
    return run_hamroh(
        ["triage", *args], tmp_path, HAMROH_FLOWS_DIR=str(flows_dir), HAMROH_DATABASE_URL=absent
    )


def test_the_command_prints_one_line_per_text_and_exits_0(tmp_path: Path) -> None:
    folder = tmp_path / "only_triage"  # nothing but triage.yaml: no other content, no database
    folder.mkdir()
    shutil.copy(DATA / "flows" / LEXICON_FILE, folder)
    result = hamroh(tmp_path, "муж бьет меня", "he beats the carpet", "худкуши", "", flows_dir=folder)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "urgent violence: violence.beaten",
        "normal",
        "urgent suicide: suicide.words",
        "normal",
    ]
    assert not (tmp_path / "absent").exists()


def test_the_command_names_the_line_of_a_broken_triage_file(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    write_lexicon(folder, "rules:\n  - id: x.y\n    category: x\n    any: [a]\n")
    result = hamroh(tmp_path, "hello", flows_dir=folder)
    assert result.returncode == 1
    assert "triage.yaml:3: rules.0.category" in result.stderr


def read_labelled(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


def test_a_caller_that_has_folded_the_text_gets_the_same_verdict(lexicon: Lexicon) -> None:
    for text in ("Шавҳарам маро мезанад!", "he beats the carpet", "нехочужить"):
        assert classify_folded(lexicon, fold(text)) == classify(lexicon, text)
