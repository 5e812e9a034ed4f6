"""Dates as she says them, in her language."""

from __future__ import annotations

from datetime import date

from babel.dates import format_date


def date_in_words(day: date, lang: str) -> str:
    """A date as she says it: "11 январи 2027", "11 января 2027", "11 January 2027".

    Babel gives the month names; Tajik joins the month to the year with the izofat "-и", which its
    locale data lacks (it has only "11 Январ 2027").
    """
    if lang == "tg":
        month = format_date(day, "MMMM", locale="tg").lower()
        return f"{day.day} {month}и {day.year}"
    return format_date(day, "d MMMM y", locale=lang if lang in ("ru", "en") else "en")
