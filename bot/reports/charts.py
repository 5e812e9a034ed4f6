"""Bar charts of released tables, as geometry a template draws as SVG (no script, nothing from outside).

Horizontal bars, one line per value of the first key; with a second key, one bar per value of it within
each line (a legend names them). A hidden count has no bar, only its mark ("<5") where the bar would start,
so a chart never shows more than the table beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.reports.report import Published

LABEL_WIDTH = 150.0  # room for a line's name, left of the bars
BAR_AREA = 330.0
VALUE_ROOM = 60.0  # right of the longest bar, for its number
BAR_HEIGHT = 16.0
GAP = 6.0
TOP = 6.0
LEGEND_LINE = 18.0
MAX_LINES = 40  # a longer table is drawn for its first 40 lines; the table beside it has them all


@dataclass(frozen=True)
class Bar:
    """One bar (or, when hidden, only its mark): where it is, and the text beside it."""

    series: int
    x: float
    y: float
    width: float
    height: float
    text: str
    text_x: float
    text_y: float
    hidden: bool


@dataclass(frozen=True)
class Label:
    """A line's name, right-aligned before its bars."""

    text: str
    x: float
    y: float


@dataclass(frozen=True)
class Chart:
    """A whole chart: its size, bars, line names and legend (for two keys)."""

    id: str
    title: str
    width: float
    height: float
    bars: tuple[Bar, ...]
    labels: tuple[Label, ...]
    legend: tuple[Label, ...]
    legend_y: float
    shortened: bool


def bar_chart(published: Published) -> Chart | None:
    """The chart of a one- or two-key table; None for a finer one (its table is all there is)."""
    table = published.table
    if len(table.keys) not in (1, 2) or not table.axes[0]:
        return None
    lines = table.axes[0][:MAX_LINES]
    series = table.axes[1] if len(table.keys) == 2 else ("",)
    mark = f"<{table.threshold}"
    shown = [v for v in table.cells.values() if v is not None]
    top = max(shown, default=0) or 1
    group = len(series) * BAR_HEIGHT + GAP
    bars: list[Bar] = []
    labels: list[Label] = []
    for i, line in enumerate(lines):
        y0 = TOP + i * group
        labels.append(Label(text=line, x=LABEL_WIDTH - 6, y=y0 + len(series) * BAR_HEIGHT / 2 + 4))
        for s, name in enumerate(series):
            cell = (line, name) if len(table.keys) == 2 else (line,)
            value = table.cells[cell]
            y = y0 + s * BAR_HEIGHT
            width = 0.0 if value is None else max(1.0, BAR_AREA * value / top) if value else 0.0
            bars.append(
                Bar(
                    series=s,
                    x=LABEL_WIDTH,
                    y=y + 1,
                    width=round(width, 1),
                    height=BAR_HEIGHT - 2,
                    text=mark if value is None else str(value),
                    text_x=round(LABEL_WIDTH + width + 4, 1),
                    text_y=y + BAR_HEIGHT - 4,
                    hidden=value is None,
                )
            )
    height = TOP + len(lines) * group
    legend: list[Label] = []
    if len(table.keys) == 2:
        legend = [Label(text=name, x=LABEL_WIDTH + 110 * s, y=height + 12) for s, name in enumerate(series)]
        height += LEGEND_LINE
    return Chart(
        id=f"chart-{published.slug}",
        title=published.title,
        width=LABEL_WIDTH + BAR_AREA + VALUE_ROOM,
        height=height + 4,
        bars=tuple(bars),
        labels=tuple(labels),
        legend=tuple(legend),
        legend_y=height - LEGEND_LINE + 12 if legend else 0,
        shortened=len(table.axes[0]) > MAX_LINES,
    )
