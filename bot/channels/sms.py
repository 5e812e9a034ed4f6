"""SMS: replies as short numbered lists, in the letters she chose, within a segment budget."""

from __future__ import annotations

from bot.model import Reply, Script
from bot.text import SmsCount, sms_segments, to_latin, to_plain_cyrillic

MENU_NUMBER = "0"


def render(reply: Reply, script: Script = "cyrillic") -> str:
    """The SMS text of a reply: its text, then "1 Label" lines, then "0 Menu"."""
    lines = [reply.text]
    lines.extend(f"{number} {option.label}" for number, option in enumerate(reply.options, start=1))
    if reply.menu:
        lines.append(f"{MENU_NUMBER} {reply.menu}")
    return in_script("\n".join(lines), script)


def in_script(text: str, script: Script) -> str:
    """Text in the letters she chose for SMS: Cyrillic, Cyrillic without Tajik letters, or Latin."""
    if script == "latin":
        return to_latin(text)
    if script == "plain":
        return to_plain_cyrillic(text)
    return text


def cost(text: str) -> SmsCount:
    """Encoding and segment count of an SMS text (GSM 03.38)."""
    return sms_segments(text)
