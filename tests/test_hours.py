"""Hours of the day in Dushanbe: service hours and her safe hours."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.conversation.hours import HoursError, as_she_writes, parse

SATURDAY_20H = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)  # 20:00 in Dushanbe (UTC+5)


def test_always_open_by_default() -> None:
    for text in (None, "", "always", "24/7"):
        assert parse(text).open_at(SATURDAY_20H)
        assert parse(text).next_open(SATURDAY_20H) == SATURDAY_20H


def test_weekdays_and_a_saturday_morning() -> None:
    hours = parse("mon-fri 09-18, sat 10-14")
    assert not hours.open_at(SATURDAY_20H)
    assert hours.next_open(SATURDAY_20H) == datetime(2026, 11, 30, 4, 0, tzinfo=UTC)  # Monday 09:00
    assert hours.open_at(datetime(2026, 11, 28, 6, 0, tzinfo=UTC))  # Saturday 11:00


def test_a_window_over_midnight() -> None:
    night = parse("22-6")
    assert night.open_at(datetime(2026, 11, 28, 20, 0, tzinfo=UTC))  # 01:00
    assert not night.open_at(datetime(2026, 11, 28, 10, 0, tzinfo=UTC))  # 15:00
    assert night.next_open(datetime(2026, 11, 28, 10, 0, tzinfo=UTC)) == datetime(
        2026, 11, 28, 17, 0, tzinfo=UTC
    )


@pytest.mark.parametrize("text", ["25-3", "9-9", "someday", "mon-xyz 09-18", "9:75-10"])
def test_hours_that_cannot_be_read_say_how_to_write_them(text: str) -> None:
    with pytest.raises(HoursError):
        parse(text)


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("18-21", "18:00-21:00"),
        ("с 18:00 до 21:00", "18:00-21:00"),
        ("аз соати 9 то 12", "09:00-12:00"),
        ("22 6", "22:00-06:00"),
        ("after dinner", None),
        ("18", None),
        ("18-18", None),
        ("30-40", None),
    ],
)
def test_hours_as_she_writes_them(text: str, window: str | None) -> None:
    assert as_she_writes(text) == window
