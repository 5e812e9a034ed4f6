"""Hours of the day in Asia/Dushanbe: when counsellors answer, and when it is safe to write to her.

Pure: times in, times out. A window is "18-21" or "09:00-18:00" (the end is not included); a window that
ends before it begins runs over midnight ("22-6"). Service hours may name days: "mon-fri 09-18, sat 10-14".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

DUSHANBE = ZoneInfo("Asia/Dushanbe")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(r"^\s*(\d{1,2})(?::(\d{2}))?\s*[-–—]\s*(\d{1,2})(?::(\d{2}))?\s*$")
_TIMES = re.compile(r"(\d{1,2})(?:[:.](\d{2}))?")
_DAYS = re.compile(r"^\s*([a-z]{3})(?:\s*-\s*([a-z]{3}))?\s+(.+)$")


class HoursError(ValueError):
    """Hours that cannot be read; the message says how to write them."""


@dataclass(frozen=True)
class Window:
    """From `start` to `end` on the given weekdays (0 = Monday), in Dushanbe time."""

    start: time
    end: time
    days: frozenset[int] = frozenset(range(7))

    def holds(self, local: datetime) -> bool:
        """Whether this local Dushanbe time falls inside the window."""
        now = local.time()
        if self.start <= self.end:
            return local.weekday() in self.days and self.start <= now < self.end
        if now >= self.start:  # over midnight: the evening belongs to that day
            return local.weekday() in self.days
        return (local.weekday() - 1) % 7 in self.days and now < self.end

    def text(self) -> str:
        """The window as people write it: "18:00-21:00"."""
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True)
class Hours:
    """A set of windows; no windows means always open."""

    windows: tuple[Window, ...] = ()

    @property
    def always(self) -> bool:
        """Whether there is no limit at all."""
        return not self.windows

    def open_at(self, when: datetime) -> bool:
        """Whether `when` (aware, any zone) falls inside one of the windows."""
        if self.always:
            return True
        local = when.astimezone(DUSHANBE)
        return any(w.holds(local) for w in self.windows)

    def next_open(self, when: datetime) -> datetime:
        """`when` itself if open, otherwise the next moment a window begins (UTC)."""
        if self.open_at(when):
            return when
        local = when.astimezone(DUSHANBE)
        starts = []
        for days_ahead in range(8):
            day = (local + timedelta(days=days_ahead)).date()
            for window in self.windows:
                begin = datetime.combine(day, window.start, DUSHANBE)
                if begin > local and window.holds(begin):
                    starts.append(begin)
        return min(starts).astimezone(UTC) if starts else when

    def text(self) -> str:
        """The hours as set, in a form she and the staff can read."""
        return ", ".join(w.text() for w in self.windows)


def window(text: str, days: frozenset[int] = frozenset(range(7))) -> Window:
    """Read "18-21" or "09:00-18:00" (HoursError when it is not a window)."""
    match = _WINDOW.match(text)
    if not match:
        raise HoursError("write hours as 18-21 or 09:00-18:00")
    h1, m1, h2, m2 = (int(g) if g else 0 for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise HoursError("hours go from 0 to 24, minutes from 0 to 59")
    start, end = time(h1, m1), time(0, 0) if h2 == 24 else time(h2, m2)
    if start == end:
        raise HoursError("a window must not begin and end at the same time")
    return Window(start, end, days)


def parse(text: str | None) -> Hours:
    """Service hours or safe hours as configured ("" or None or "always": always open)."""
    if text is None or text.strip().lower() in ("", "always", "24/7"):
        return Hours()
    windows = []
    for part in text.split(","):
        match = _DAYS.match(part.strip().lower())
        days = frozenset(range(7))
        spec = part
        if match:
            unknown = [day for day in match.group(1, 2) if day is not None and day not in DAYS]
            if unknown:
                raise HoursError(f"unknown day {unknown[0]!r}: use {', '.join(DAYS)}")
            first, last = DAYS.index(match.group(1)), DAYS.index(match.group(2) or match.group(1))
            days = frozenset((first + i) % 7 for i in range((last - first) % 7 + 1))
            spec = match.group(3)
        windows.append(window(spec, days))
    return Hours(tuple(windows))


def as_she_writes(text: str) -> str | None:
    """Hours as she writes them ("18-21", "с 18:00 до 21:00", "18 21") as a window "18:00-21:00"; None
    when they are not two times of the day."""
    times = _TIMES.findall(text)
    if len(times) != 2:
        return None
    (h1, m1), (h2, m2) = times
    try:
        return window(f"{h1}:{m1 or '00'}-{h2}:{m2 or '00'}").text()
    except HoursError:
        return None
