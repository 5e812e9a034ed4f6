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
3. Coarser tables: the table over fewer keys (by=topic for by=topic,month) is released first, by these
   same rules, and every cell under one of its hidden cells is hidden here too (the whole row of a hidden
   topic). Its box, laid in any one slice of this table, is then a box of hidden cells here, which changes
   only hidden numbers of both tables: so this table never gives back what the coarser one hides, and the
   answers agree. For two keys, the row and column totals shown are exactly those coarser tables.
4. Repeat 2 until nothing changes (each step only hides more, so it ends).

Every hidden number then has a change of the hidden numbers that keeps every published number, so no
combination of the cells and totals of the table (nor of the totals over fewer keys, which the box keeps
too) gives it back. Keys with a single value are set aside first: their lines are single cells, equal to
the totals over the other keys.

What it does not prevent (said in README): the difference of two answers over overlapping periods (January
to November minus January to October is November alone, small cells included). Each table is safe on its
own and together with every table over fewer of its keys for the same period; publish fixed periods, not a
series of overlapping ones. Tables of three keys or more show cells only, no totals.
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
    below = _hidden_below(table, threshold)
    hidden = below[tuple(range(len(table.keys)))]
    margins: tuple[dict[str, int | None], ...] = ()
    total: int | None = None
    grand = sum(table.value(c) for c in table.cells())
    has_totals = len(table.keys) <= 2
    if has_totals:
        total = grand if grand >= threshold else None
    if len(table.keys) == 2:
        margins = tuple(
            {v: None if (v,) in below[(d,)] else _margin(table, d, v) for v in table.axes[d]}
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


def _hidden_below(table: Table, k: int) -> dict[tuple[int, ...], set[Key]]:
    """The hidden cells of the table and of every table over fewer of its keys (by the keys' positions).

    Rule 3: a cell lying under a hidden cell of a coarser table is hidden too, so the cells of this table
    never add up to what the coarser one hides; the coarser table's box, laid in any one slice of the
    finer table, is then a box of hidden cells here too.
    """
    found: dict[tuple[int, ...], set[Key]] = {}

    def hidden(dims: tuple[int, ...]) -> set[Key]:
        if dims not in found:
            sub = _project(table, dims)
            start: set[Key] = set()
            if len(dims) > 1:
                for dropped in dims:
                    kept = [i for i, d in enumerate(dims) if d != dropped]
                    coarser = hidden(tuple(d for d in dims if d != dropped))
                    start.update(c for c in sub.cells() if tuple(c[i] for i in kept) in coarser)
            found[dims] = _hide_cells(sub, k, start)
        return found[dims]

    hidden(tuple(range(len(table.keys))))
    return found


def _project(table: Table, dims: tuple[int, ...]) -> Table:
    """The table summed over every key not in `dims`."""
    if dims == tuple(range(len(table.keys))):
        return table
    counts: dict[Key, int] = {}
    for cell, n in table.counts.items():
        key = tuple(cell[d] for d in dims)
        counts[key] = counts.get(key, 0) + n
    return Table(tuple(table.keys[d] for d in dims), tuple(table.axes[d] for d in dims), counts)
