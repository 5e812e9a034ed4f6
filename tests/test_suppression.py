"""Small-cell suppression, attacked: every published number becomes an equation, and exact linear algebra
looks for a hidden count those equations pin down. It must find none; and it does find one in tables
hidden the naive way, so the attack is real."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction

import pytest

from bot.reports.suppress import MAX_CELLS, Key, Released, Table, TooFine, _hide_cells, release

K = 5
Var = tuple[str, ...]  # ("cell", *key), ("margin", d, value), ("total",)


def table(rows: Sequence[str], cols: Sequence[str] | None, values: Iterable[int]) -> Table:
    values = list(values)
    if cols is None:
        return Table(("a",), (tuple(rows),), {(r,): v for r, v in zip(rows, values, strict=True)})
    cells = list(itertools.product(rows, cols))
    return Table(("a", "b"), (tuple(rows), tuple(cols)), dict(zip(cells, values, strict=True)))


def recoverable(equations: list[tuple[dict[Var, int], int]], unknown: set[Var]) -> set[Var]:
    """The unknowns whose value the equations (sum of coefficient * variable = constant) determine."""
    order = sorted(unknown)
    index = {v: i for i, v in enumerate(order)}
    matrix = []
    for coefficients, _ in equations:
        row = [Fraction(0)] * len(order)
        for var, c in coefficients.items():
            if var in index:
                row[index[var]] += c
        if any(row):
            matrix.append(row)
    # Reduced row echelon form; a variable is determined iff some row of it is that variable alone.
    pivot_row = 0
    for column in range(len(order)):
        found = next((r for r in range(pivot_row, len(matrix)) if matrix[r][column] != 0), None)
        if found is None:
            continue
        matrix[pivot_row], matrix[found] = matrix[found], matrix[pivot_row]
        lead = matrix[pivot_row][column]
        matrix[pivot_row] = [x / lead for x in matrix[pivot_row]]
        for r in range(len(matrix)):
            if r != pivot_row and matrix[r][column] != 0:
                factor = matrix[r][column]
                matrix[r] = [x - factor * y for x, y in zip(matrix[r], matrix[pivot_row], strict=True)]
        pivot_row += 1
    return {order[next(i for i, x in enumerate(row) if x)] for row in matrix if sum(1 for x in row if x) == 1}


def attack(t: Table, released: Released, *, all_totals_known: bool = False) -> set[Var]:
    """What an attacker recovers from the released table: cells, its totals along each key (published
    ones; or, with `all_totals_known`, the true total of every line of two cells or more that is not
    small, as tables over fewer keys would show it), and the grand total."""
    unknown: set[Var] = {("cell", *c) for c, v in released.cells.items() if v is None}
    equations: list[tuple[dict[Var, int], int]] = []  # sum of coefficient * variable = constant
    for d, axis in enumerate(t.axes):
        others = [a for i, a in enumerate(t.axes) if i != d]
        for rest in itertools.product(*others):
            line = [(*rest[:d], v, *rest[d:]) for v in axis]
            cells: dict[Var, int] = {("cell", *c): 1 for c in line}
            if all_totals_known:
                # A total under K is hidden wherever it is published; a line of one cell is that cell,
                # released alike in the table without this key.
                total = sum(t.value(c) for c in line)
                if total >= K and len(line) > 1:
                    equations.append((cells, total))
            elif len(t.keys) == 2:
                margin: Var = ("margin", str(1 - d), rest[0])
                if released.margins[1 - d][rest[0]] is None:
                    unknown.add(margin)
                equations.append((cells | {margin: -1}, 0))
    if not all_totals_known and released.has_totals:
        if released.total is None:
            unknown.add(("total",))
        equations.append(({("cell", *c): 1 for c in t.cells()} | {("total",): -1}, 0))
    folded = []
    for coefficients, constant in equations:
        shown = sum(c * _shown(t, released, v) for v, c in coefficients.items() if v not in unknown)
        folded.append(({v: c for v, c in coefficients.items() if v in unknown}, constant - shown))
    return recoverable(folded, unknown)


def _shown(t: Table, released: Released, var: Var) -> int:
    if var[0] == "cell":
        value = released.cells[var[1:]]
    elif var[0] == "margin":
        value = released.margins[int(var[1])][var[2]]
    else:
        value = released.total
    assert value is not None
    return value


def check_sound(t: Table, released: Released) -> None:
    assert all(v is None for c, v in released.cells.items() if t.value(c) < K), "a small cell is shown"
    for d, margin in enumerate(released.margins):
        for value, shown in margin.items():
            true = sum(n for c, n in t.counts.items() if c[d] == value)
            assert shown is None or (shown == true and true >= K)
    assert attack(t, released) == set()
    assert attack(t, released, all_totals_known=True) == set()


def naive(t: Table) -> Released:
    """Only the small cells hidden, totals shown: what the attack must see through."""
    cells = {c: (None if t.value(c) < K else t.value(c)) for c in t.cells()}
    margins: tuple[dict[str, int | None], ...] = tuple(
        {v: sum(n for c, n in t.counts.items() if c[d] == v) for v in axis} for d, axis in enumerate(t.axes)
    )
    total = sum(t.counts.values())
    return Released(t.keys, t.axes, dict(cells), K, margins if len(t.keys) == 2 else (), total, True)


def test_one_key_a_lonely_small_cell_takes_the_next_smallest_with_it() -> None:
    t = table(["legal", "health", "work", "stories"], None, [3, 40, 12, 9])
    released = release(t, K)
    assert released.cells == {("legal",): None, ("health",): 40, ("work",): 12, ("stories",): None}
    assert released.total == 64
    check_sound(t, released)
    assert attack(t, naive(t)) == {("cell", "legal")}  # the total minus the rest


def test_one_key_a_single_value_hides_its_total_too() -> None:
    t = table(["sms"], None, [3])
    released = release(t, K)
    assert released.cells == {("sms",): None}
    assert released.total is None
    check_sound(t, released)


def test_two_keys_lines_with_one_hidden_cell_get_a_second() -> None:
    t = table(["urgent", "normal"], ["referred", "resolved", "other"], [2, 30, 11, 25, 40, 17])
    released = release(t, K)
    check_sound(t, released)
    assert released.cells[("urgent", "referred")] is None
    assert sum(v is None for v in released.cells.values()) == 4  # a rectangle of the cheapest cells
    assert attack(t, naive(t)) == {("cell", "urgent", "referred")}


def test_two_keys_a_hidden_cell_linking_two_hidden_groups_is_not_recoverable() -> None:
    # Two squares of hidden cells joined by one hidden cell: every line has two hidden cells, which the
    # "two per line" rule accepts; yet two row totals minus two column totals give the joining cell.
    rows, cols = ["r1", "r2", "r3", "r4"], ["c1", "c2", "c3", "c4"]
    values = [
        [1, 2, 50, 60],
        [3, 4, 6, 70],
        [80, 90, 1, 2],
        [55, 65, 3, 4],
    ]
    t = table(rows, cols, [v for line in values for v in line])
    two_per_line = naive(t)
    two_per_line.cells[("r2", "c3")] = None
    assert attack(t, two_per_line) >= {("cell", "r2", "c3")}
    released = release(t, K)
    check_sound(t, released)
    # And when that joining cell has to be hidden (here: asked to be), it gets a box of its own.
    hidden = _hide_cells(t, K, start={("r2", "c3")})
    boxed = naive(t)
    boxed.cells.update({c: None for c in hidden})
    assert attack(t, boxed, all_totals_known=True) == set()


def test_a_hidden_total_cannot_be_worked_out_from_the_cells() -> None:
    # Row totals 3 (hidden) and 20 (hidden beside it); with the cells of the second row all shown, its
    # total would follow, and then the first from the grand total.
    t = table(["a", "b", "c"], ["x", "y"], [1, 2, 10, 10, 30, 40])
    released = release(t, K)
    assert released.margins[0]["a"] is None
    assert released.margins[0]["b"] is None
    check_sound(t, released)


@pytest.mark.parametrize(
    ("rows", "values"),
    [
        (3, [0, 0, 9, 7, 155, 2]),
        (5, [5, 10, 0, 48, 0, 39, 0, 0, 1, 31]),
        (3, [3, 1, 6, 55, 2162, 0]),
    ],
)
def test_a_hidden_total_beside_shown_cells_gets_hidden_cells(rows: int, values: list[int]) -> None:
    t = table([f"r{i}" for i in range(rows)], ["x", "y"], values)
    check_sound(t, release(t, K))


def test_totals_are_what_the_one_key_table_shows() -> None:
    t = table(["a", "b", "c", "d"], ["x", "y", "z"], [1, 7, 9, 30, 2, 8, 6, 6, 6, 50, 40, 1])
    released = release(t, K)
    for d in range(2):
        alone = Table(
            (t.keys[d],),
            (t.axes[d],),
            {(v,): sum(n for c, n in t.counts.items() if c[d] == v) for v in t.axes[d]},
        )
        assert {c[0]: v for c, v in release(alone, K).cells.items()} == released.margins[d]


@pytest.mark.parametrize("seed", range(60))
def test_random_tables_give_nothing_back(seed: int) -> None:
    rng = random.Random(seed)
    rows = [f"r{i}" for i in range(rng.randint(1, 6))]
    cols = [f"c{i}" for i in range(rng.randint(1, 5))]
    values = [int(rng.paretovariate(1.2)) - 1 for _ in range(len(rows) * len(cols))]
    two = table(rows, cols, values)
    check_sound(two, release(two, K))
    one = table(rows, None, values[: len(rows)])
    check_sound(one, release(one, K))


@pytest.mark.parametrize("seed", range(10))
def test_three_keys_give_nothing_back_even_with_every_total_known(seed: int) -> None:
    rng = random.Random(seed)
    axes = tuple(tuple(f"{name}{i}" for i in range(rng.randint(2, 4))) for name in "abc")
    counts: Mapping[Key, int] = {c: int(rng.paretovariate(1.0)) - 1 for c in itertools.product(*axes)}
    t = Table(("a", "b", "c"), axes, counts)
    released = release(t, K)
    assert not released.has_totals
    assert released.total is None
    assert all(v is None for c, v in released.cells.items() if t.value(c) < K)
    assert attack(t, released, all_totals_known=True) == set()


# 41 and after: cubes where a finer table would give back a coarser one's hidden cell but for rule 3.
@pytest.mark.parametrize("seed", [*range(20), 41, 66, 103, 119, 128, 144])
def test_every_table_of_the_same_counts_published_together_gives_nothing_back(seed: int) -> None:
    # A cube of counts over three keys, and every table over one, two or three of its keys released from
    # it (as the API would, for the same period): every shown number is an equation on the cube's cells.
    # No hidden number of any of these tables may follow from all of them together.
    rng = random.Random(seed)
    axes = tuple(tuple(f"{name}{i}" for i in range(rng.randint(2, 3))) for name in "abc")
    cube = Table(
        ("a", "b", "c"), axes, {c: int(rng.paretovariate(0.8)) - 1 for c in itertools.product(*axes)}
    )
    variables: set[Var] = {("cell", *c) for c in cube.cells()}

    def under(dims: tuple[int, ...], cell: Key) -> dict[Var, int]:
        return {("cell", *c): 1 for c in cube.cells() if tuple(c[d] for d in dims) == cell}

    equations: list[tuple[dict[Var, int], int]] = []
    hidden: list[dict[Var, int]] = []
    subsets = [s for n in (1, 2, 3) for s in itertools.combinations(range(3), n)]
    for dims in subsets:
        counts: dict[Key, int] = {}
        for c, n in cube.counts.items():
            counts[tuple(c[d] for d in dims)] = counts.get(tuple(c[d] for d in dims), 0) + n
        released = release(Table(tuple("abc"[d] for d in dims), tuple(axes[d] for d in dims), counts), K)
        for cell, value in released.cells.items():
            if value is None:
                hidden.append(under(dims, cell))
            else:
                equations.append((under(dims, cell), value))
        if released.total is not None:
            equations.append(({v: 1 for v in variables}, released.total))
    for secret in hidden:
        probe: Var = ("secret",)
        found = recoverable([*equations, (secret | {probe: -1}, 0)], variables | {probe})
        assert probe not in found


def test_a_table_too_fine_is_refused() -> None:
    axes = (tuple(str(i) for i in range(200)), tuple(str(i) for i in range(MAX_CELLS // 200 + 1)))
    with pytest.raises(TooFine):
        release(Table(("a", "b"), axes, {}), K)
