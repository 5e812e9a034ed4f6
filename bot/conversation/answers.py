"""Her free-text answers to questions: safe hours, her district, and what she shares with a training
partner (kept in the turn only, never in her session)."""

from __future__ import annotations

from dataclasses import replace

from bot.conversation import hours, listings
from bot.conversation.flows import FlowSet, Node
from bot.conversation.model import DistrictSet, SafeHoursSet
from bot.conversation.state import Acc
from bot.conversation.text import keyword_score

# Questions whose answer goes to a training partner, not to her session.
PARTNER_SAVES = ("enrol_name", "enrol_phone", "enrol_name_phone")


def answer(acc: Acc, node: Node, text: str, folded: str) -> str | None:
    """A free-text answer to the question of `node`: saved (or kept for this turn), and the node she goes
    to next; None when it is no valid answer."""
    if node.save == "safe_hours":
        window = hours.as_she_writes(text)
        if window is None:
            return None
        acc.events.append(SafeHoursSet(window))
        return node.next
    if node.save in PARTNER_SAVES:
        return _details(acc, node, text)
    if node.save == "district":
        district = district_of(acc.flows, folded)
        if district is None:
            return None
        acc.session = replace(acc.session, district=district)
        acc.events.append(DistrictSet(district))
        return node.next
    return None


def _details(acc: Acc, node: Node, text: str) -> str | None:
    """Her name or phone number for a training partner: kept in this turn only, for the enrolment event."""
    name, phone = listings.name_in(text), listings.phone_in(text)
    if node.save != "enrol_phone" and name is None:
        return None
    if node.save == "enrol_phone" and phone is None:
        return None
    acc.typed = {"name": name or "", "phone": phone or ""}
    return node.next


def district_of(flows: FlowSet, folded: str) -> str | None:
    """The district she named (any language, old names too, typed roughly), or None."""
    if folded in flows.district_names:
        return flows.district_names[folded]
    scored = [(keyword_score(folded, name), district) for name, district in flows.district_names.items()]
    best = max(scored, default=(0, ""))
    return best[1] if best[0] > 0 else None
