"""What a counsellor's SMS will cost her organisation: segments in the letters she reads, and the price.

Shown while typing: Cyrillic halves what fits in a segment, so a reply to a woman on a basic phone is
better short, and the counsellor should see it before sending.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from bot.channels.sms import in_script
from bot.config import PRICE
from bot.conversation.model import Script
from bot.conversation.text import sms_segments


@dataclass(frozen=True)
class SmsCost:
    """One message as it will be billed: segments, encoding, length, and the price when one is set."""

    segments: int
    encoding: Literal["gsm7", "ucs2"]
    chars: int
    price: str | None  # "0.70 TJS"; None when no price per segment is configured


def sms_cost(text: str, script: Script, price_per_segment: str | None = None) -> SmsCost:
    """The cost of `text` sent by SMS to a woman who reads `script` (converted first, as it will be)."""
    count = sms_segments(in_script(text, script))
    return SmsCost(count.segments, count.encoding, count.chars, price_of(count.segments, price_per_segment))


def price_of(segments: int, price_per_segment: str | None) -> str | None:
    """`segments` times a price per segment ("0.35 TJS" -> "0.70 TJS" for two), to the same decimals."""
    if price_per_segment is None:
        return None
    match = PRICE.fullmatch(price_per_segment.strip())
    if match is None:  # the settings validate it; an unreadable price is left out, never guessed
        return None
    unit = Decimal(match.group(1))
    return f"{(unit * segments).quantize(unit)} {match.group(2)}"
