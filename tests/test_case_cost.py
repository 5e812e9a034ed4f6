"""What a counsellor's SMS costs, shown while typing: segments in the letters she reads, and the price."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.cases.cost import price_of, sms_cost
from bot.config import Settings


def test_what_an_sms_reply_costs_in_her_letters() -> None:
    cyrillic = sms_cost("Салом! Ҳамааш хуб?", "cyrillic", "0.35 TJS")
    latin = sms_cost("Салом! Ҳамааш хуб?", "latin", "0.35 TJS")
    assert (cyrillic.encoding, latin.encoding) == ("ucs2", "gsm7")
    long = sms_cost("Салом " * 20, "cyrillic", "0.35 TJS")
    assert (long.segments, long.price) == (2, "0.70 TJS")
    assert sms_cost("hi", "cyrillic").price is None
    assert price_of(3, "1 USD") == "3 USD"
    assert price_of(1, "nonsense") is None


def test_the_price_per_segment_is_a_number_and_a_currency() -> None:
    assert Settings(sms_price_per_segment=" 0.35   TJS ").sms_price_per_segment == "0.35 TJS"
    assert Settings(sms_price_per_segment="").sms_price_per_segment is None
    for bad in ("0,35 TJS", "TJS 0.35", "0.35", "cheap"):
        with pytest.raises(ValidationError, match="a number then a currency code"):
            Settings(sms_price_per_segment=bad)
