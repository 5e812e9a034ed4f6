"""Small-cell suppression: no published number lets anyone recover a count under the threshold.

A table is a dense grid of counts over one or more keys (every combination of the values seen, zeros
included). Released, it shows each cell or hides it, and for one- and two-key tables it shows totals: the
grand total, and for two keys the total of each row and of each column.

The rule, and why it is sound against exact recovery:

1. Primary: every cell under the threshold `k` (zero included) is hidden; so is every total under `k`.
2. Cells: each hidden cell must lie at a corner of a "box" whose corners are all hidden: for one key, a
   second hidden cell; for two keys, a rectangle of four hidden cells (rows r, r' x columns c, c'); for n
   keys, 2^n corners. Adding +1 and -1 alternately at the corners changes no row, column or grand total
   (each line through the box meets two corners of opposite sign), nor any total over any subset of keys,
   so the hidden cell could have any other value and every published number would be the same. A cell
   without such a box gets one: the box whose not-yet-hidden corners add up to the least is hidden too
   (complementary suppression). This is stronger than "two hidden cells in every line": that rule leaves a
   hidden cell recoverable when it is the only link between two groups of hidden cells (two rows' totals
   minus two columns' totals isolate it), and a box never is such a link.
3. Totals (two keys): the row totals are released as a one-key table of their own (rule 1 and 2: a hidden
   total has a second hidden total beside it), exactly as `by=row` alone would release them, so the two
   answers agree. A hidden row total r also needs a hidden total r' and a column c with (r, c) and
   (r', c) hidden: moving one from (r', c) to (r, c) changes only hidden numbers. Without one, the cheapest
   such pair of cells is hidden too. The same for columns. The grand total is shown when it is at least k.
4. Repeat 2 and 3 until nothing changes (each step only hides more, so it ends).

Every hidden number then has a change of the hidden numbers that keeps every published number, so no
combination of the cells and totals of the table (nor of the totals over fewer keys, which the box keeps
too) gives it back. Keys with a single value are set aside first: their lines are single cells, equal to
the totals over the other keys.

What it does not prevent (said in README): the difference of two answers over overlapping periods (January
to November minus January to October is November alone, small cells included), and joining two different
tables that split the same counts by different keys. Each table is safe on its own and with every table of
fewer keys over the same period; publish fixed periods, not a series of overlapping ones. Tables of three
keys or more show cells only, no totals.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

Key = tuple[str, ...]
MAX_CELLS = 20_000  # a finer table would be mostly hidden cells, and protecting it too slow for a page
MAX_BOXES = 256  # boxes considered for one cell; beyond it only the cheapest partners of each key


class TooFine(ValueError):
    """The table asked for has more cells than can be released usefully."""


@dataclass(frozen=True)
class Table:
    """Counts over `keys`; `axes[i]` are the values of key i, in the order shown. Missing cells are zero."""

    keys: tuple[str, ...]
    axes: tuple[tuple[str, ...], ...]
    counts: Mapping[Key, int]

    def value(self, cell: Key) -> int:
        """The count of a cell (zero when absent)."""
        return self.counts.get(cell, 0)

    def cells(self) -> list[Key]:
        """Every cell of the grid, in the order shown."""
        return [tuple(c) for c in itertools.product(*self.axes)]


@dataclass(frozen=True)
class Released:
    """A table as it may be published: `None` stands for a hidden number."""

    keys: tuple[str, ...]
    axes: tuple[tuple[str, ...], ...]
    cells: dict[Key, int | None]
    threshold: int
    # For one and two keys: totals along each key (value -> total), and the grand total.
    margins: tuple[dict[str, int | None], ...] = ()
    total: int | None = None
    has_totals: bool = False
    hidden: int = field(default=0)

    def rows(self) -> list[tuple[Key, int | None]]:
        """(cell, shown value) in the order shown."""
        return [(tuple(c), self.cells[tuple(c)]) for c in itertools.product(*self.axes)]


def release(table: Table, threshold: int) -> Released:
    """The table with every small cell hidden, and enough others that none can be recovered (see above)."""
    size = 1
    for axis in table.axes:
        size *= len(axis)
    if size > MAX_CELLS:
        raise TooFine(f"{size} cells: choose fewer keys or a shorter period (at most {MAX_CELLS})")
    hidden = _hide_cells(table, threshold)
    margins: tuple[dict[str, int | None], ...] = ()
    total: int | None = None
    grand = sum(table.value(c) for c in table.cells())
    has_totals = len(table.keys) <= 2
    if has_totals:
        total = grand if grand >= threshold else None
    if len(table.keys) == 2 and all(len(a) > 0 for a in table.axes):
        hidden, hidden_margins = _two_keys(table, threshold, hidden)
        margins = tuple(
            {v: None if v in hidden_margins[d] else _margin(table, d, v) for v in table.axes[d]}
            for d in range(2)
        )
    cells = {c: (None if c in hidden else table.value(c)) for c in table.cells()}
    return Released(
        keys=table.keys,
        axes=table.axes,
        cells=cells,
        threshold=threshold,
        margins=margins,
        total=total,
        has_totals=has_totals,
        hidden=len(hidden),
    )


def _margin(table: Table, d: int, v: str) -> int:
    return sum(n for c, n in table.counts.items() if c[d] == v)


def _hide_cells(table: Table, k: int, start: Iterable[Key] = ()) -> set[Key]:
    """Primary suppression and boxes (rule 1 and 2) until every hidden cell has a box."""
    hidden = {c for c in table.cells() if table.value(c) < k} | set(start)
    free = [d for d, axis in enumerate(table.axes) if len(axis) > 1]  # keys that can vary in a box
    if not free:
        return hidden
    pending = sorted(hidden)
    while pending:
        cell = pending.pop()
        if cell not in hidden or _has_box(table, hidden, cell, free):
            continue
        corners = _cheapest_box(table, hidden, cell, free)
        new = [c for c in corners if c not in hidden]
        hidden.update(new)
        pending.extend(sorted(new))
    return hidden


def _partners(table: Table, cell: Key, d: int) -> list[str]:
    return [v for v in table.axes[d] if v != cell[d]]


def _corners(cell: Key, free: Sequence[int], partner: Sequence[str]) -> list[Key]:
    out = []
    for choice in itertools.product((False, True), repeat=len(free)):
        corner = list(cell)
        for d, other, swap in zip(free, partner, choice, strict=True):
            if swap:
                corner[d] = other
        out.append(tuple(corner))
    return out


def _has_box(table: Table, hidden: set[Key], cell: Key, free: Sequence[int]) -> bool:
    # Only partners whose neighbour along that key is hidden can make a box of hidden corners.
    options = []
    for d in free:
        ok = [v for v in _partners(table, cell, d) if _swap(cell, d, v) in hidden]
        if not ok:
            return False
        options.append(ok)
    for count, partner in enumerate(itertools.product(*options)):
        if count >= MAX_BOXES:
            return False  # not found among those looked at: a new box is safe, merely more hidden
        if all(c in hidden for c in _corners(cell, free, partner)):
            return True
    return False


def _swap(cell: Key, d: int, v: str) -> Key:
    out = list(cell)
    out[d] = v
    return tuple(out)


def _cheapest_box(table: Table, hidden: set[Key], cell: Key, free: Sequence[int]) -> list[Key]:
    def cost(c: Key) -> int:
        return 0 if c in hidden else table.value(c) + 1  # +1: a hidden zero costs less than a new one

    def by_cost(d: int) -> list[str]:
        def price(v: str) -> tuple[int, str]:
            return cost(_swap(cell, d, v)), v

        return sorted(_partners(table, cell, d), key=price)

    options = [by_cost(d) for d in free]
    while _product_size(options) > MAX_BOXES:
        widest = max(range(len(options)), key=lambda i: len(options[i]))
        options[widest] = options[widest][: max(2, len(options[widest]) // 2)]
    best: tuple[int, list[Key]] | None = None
    for partner in itertools.product(*options):
        corners = _corners(cell, free, partner)
        price = sum(cost(c) for c in corners)
        if best is None or price < best[0]:
            best = (price, corners)
    assert best is not None  # every free key has at least one partner
    return best[1]


def _product_size(options: Sequence[Sequence[str]]) -> int:
    size = 1
    for o in options:
        size *= len(o)
    return size


def _two_keys(table: Table, k: int, hidden: set[Key]) -> tuple[set[Key], tuple[set[str], set[str]]]:
    """Rule 3 and 4 for a table of two keys: totals released as one-key tables, each hidden total tied to
    another through hidden cells."""
    margin_tables = [
        Table((table.keys[d],), (table.axes[d],), {(v,): _margin(table, d, v) for v in table.axes[d]})
        for d in range(2)
    ]
    hidden_margins = tuple({c[0] for c in _hide_cells(t, k)} for t in margin_tables)
    while True:
        added: list[Key] = []
        for d in range(2):
            other = 1 - d
            for v in sorted(hidden_margins[d]):
                pair = _margin_pair(table, hidden, hidden_margins[d], d, v, other)
                added += [c for c in pair if c not in hidden]
                hidden.update(pair)
        if not added:
            return hidden, (hidden_margins[0], hidden_margins[1])
        hidden = _hide_cells(table, k, hidden)


def _margin_pair(
    table: Table, hidden: set[Key], hidden_margins: set[str], d: int, v: str, other: int
) -> list[Key]:
    """Two hidden cells in one line across key `d`, one at `v` and one at another hidden total's value."""

    def at(value: str, c: str) -> Key:
        cell = ["", ""]
        cell[d], cell[other] = value, c
        return (cell[0], cell[1])

    best: tuple[int, list[Key]] | None = None
    for v2 in sorted(hidden_margins - {v}):
        for c in table.axes[other]:
            pair = [at(v, c), at(v2, c)]
            price = sum(0 if p in hidden else table.value(p) + 1 for p in pair)
            if price == 0:
                return pair
            if best is None or price < best[0]:
                best = (price, pair)
    return best[1] if best is not None else []
