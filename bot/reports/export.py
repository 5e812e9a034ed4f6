"""A published table as JSON and as CSV: a hidden number is null (JSON) or an empty value with a footnote
(CSV), never the number."""

from __future__ import annotations

import csv
import io
from typing import Any

from bot.reports.report import Published

ALL = "(all)"  # the key's value on a total's line


def footnote(threshold: int) -> str:
    """What a hidden number means, in the words of the page and the files."""
    return f"hidden: fewer than {threshold}, or hidden so that a hidden count cannot be worked out"


def as_json(published: Published) -> dict[str, Any]:
    """The table as a JSON object: cells, totals (one and two keys), and what `null` means."""
    table = published.table
    measure = published.measure
    cells = []
    for cell, value in table.rows():
        row: dict[str, Any] = dict(zip(table.keys, cell, strict=True))
        row[measure] = value
        for name, figures in published.extra:
            row[name] = figures.get(cell[0])
        if value is None:
            row["suppressed"] = True
        cells.append(row)
    out: dict[str, Any] = {
        "table": published.name,
        "title": published.title,
        "keys": list(table.keys),
        "threshold": table.threshold,
        "cells": cells,
        "note": footnote(table.threshold) + " (null)",
    }
    if table.has_totals:
        out["total"] = table.total
    if table.margins:
        out["totals"] = {key: dict(m) for key, m in zip(table.keys, table.margins, strict=True)}
    return out


def as_csv(published: Published) -> str:
    """The table as CSV: the keys, the count (empty when hidden), any figures beside it, and a note
    column that carries the footnote on each hidden line; totals on lines whose key reads "(all)"."""
    table = published.table
    note = footnote(table.threshold)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*table.keys, published.measure, *(name for name, _ in published.extra), "note"])

    def line(keys: list[str], value: int | None, extra: list[int | None]) -> None:
        shown = ["" if v is None else str(v) for v in (value, *extra)]
        writer.writerow([*keys, *shown, note if value is None or None in extra else ""])

    for cell, value in table.rows():
        line(list(cell), value, [figures.get(cell[0]) for _, figures in published.extra])
    if len(table.margins) == 2:
        for value_, total in table.margins[0].items():
            line([value_, ALL], total, [])
        for value_, total in table.margins[1].items():
            line([ALL, value_], total, [])
    if table.has_totals and not published.extra:
        line([ALL] * len(table.keys), table.total, [])
    return out.getvalue()
