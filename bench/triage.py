"""Crisis triage: cost per message beside `fold` alone, and recall and precision on the held-out messages.

    .venv/bin/python bench/triage.py [--rounds 50] [--show]

Cost: every held-out message is classified `--rounds` times; `fold` on the same messages, measured in the same
rounds, is the baseline: `classify` folds the text once, and `classify_folded` (for a caller that has folded
it already, as the engine does) is the rules alone. Quality:
recall and precision of "urgent" on tests/data/triage/holdout.tsv only, per form and overall; the rules are
tuned on tune.tsv and must never be adjusted to what this prints. `--show` lists the messages it gets wrong,
for a report.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import percentile
from bot.config import ROOT
from bot.conversation.text import fold
from bot.conversation.triage import LEXICON_FILE, Lexicon, Verdict, classify, classify_folded, load_lexicon

HOLDOUT = ROOT / "tests" / "data" / "triage" / "holdout.tsv"
FORMS = ("tg", "tg_plain", "tg_latin", "ru", "en")


@dataclass(frozen=True)
class Labelled:
    form: str
    urgent: bool
    category: str
    text: str


def read(path: Path) -> list[Labelled]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [Labelled(r["form"], r["label"] == "urgent", r["category"], r["text"]) for r in rows]


def timed(work: Callable[[str], object], texts: list[str], samples: list[float]) -> None:
    for text in texts:
        started = time.perf_counter()
        work(text)
        samples.append(time.perf_counter() - started)


def cost(lexicon: Lexicon, texts: list[str], rounds: int) -> None:
    folded = [fold(text) for text in texts]
    alone: list[float] = []
    whole: list[float] = []
    rules: list[float] = []
    for _ in range(rounds):  # interleaved, so that all three meet the same machine
        timed(fold, texts, alone)
        timed(lambda text: classify(lexicon, text), texts, whole)
        timed(lambda key: classify_folded(lexicon, key), folded, rules)
    print(f"{len(texts)} held-out messages x {rounds} rounds = {len(alone)} timings each")
    base = statistics.fmean(alone)
    report("fold alone (baseline)", alone, base)
    report("classify (folds once)", whole, base)
    report("rules alone (pre-folded)", rules, base)


def report(name: str, samples: list[float], base: float) -> None:
    mean, p99 = statistics.fmean(samples), percentile(samples, 0.99)
    print(f"{name:<26} mean {mean * 1000:7.4f} ms   p99 {p99 * 1000:7.4f} ms   {mean / base:5.2f}x fold")


def ratio(part: int, whole: int) -> str:
    return f"{part / whole:6.3f}" if whole else "     -"


def quality(lexicon: Lexicon, rows: list[Labelled], show: bool) -> None:
    verdicts: list[Verdict | None] = [classify(lexicon, row.text) for row in rows]
    print(f"\n{'holdout':<10} {'messages':>8} {'urgent':>7} {'recall':>7} {'precision':>9} {'category':>9}")
    for form in (*FORMS, None):
        pairs = [(r, v) for r, v in zip(rows, verdicts, strict=True) if form is None or r.form == form]
        caught = [(r, v) for r, v in pairs if r.urgent and v is not None]
        flagged = sum(v is not None for _, v in pairs)
        urgent = sum(r.urgent for r, _ in pairs)
        same = sum(v is not None and v.category == r.category for r, v in caught)
        print(
            f"{form or 'all':<10} {len(pairs):>8} {urgent:>7} {ratio(len(caught), urgent):>7}"
            f" {ratio(len(caught), flagged):>9} {f'{same}/{len(caught)}':>9}"
        )
    if show:
        for row, verdict in zip(rows, verdicts, strict=True):
            if row.urgent and verdict is None:
                print(f"missed   {row.form:<9} {row.category:<12} {row.text}")
            elif not row.urgent and verdict is not None:
                print(f"flagged  {row.form:<9} {verdict.rule:<28} {row.text}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--show", action="store_true", help="list the held-out messages it gets wrong")
    args = parser.parse_args()
    lexicon = load_lexicon(ROOT / "flows" / LEXICON_FILE)
    rows = read(HOLDOUT)
    print(f"{len(lexicon.rules)} rules, {len(lexicon.terms)} distinct words and phrases")
    cost(lexicon, [row.text for row in rows], args.rounds)
    quality(lexicon, rows, args.show)


if __name__ == "__main__":
    main()
