"""Facts marked `verify: true`, each with a stable id, and whether a confirmation still covers it.

A confirmation names the fact's `reviewed` date it confirmed: when an editor changes the fact (and so its
date), the old confirmation no longer covers it and someone must confirm it again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.conversation.flows import FlowSet

DIRECTORY = "directory"  # the id prefix of service directory entries: "directory.police"


@dataclass(frozen=True)
class Fact:
    """A fact the deploying organisation must confirm before launch."""

    id: str  # "legal.alimony" (a flow node) or "directory.police" (a directory entry)
    where: str  # "legal.yaml:42"
    reviewed: dt.date | None
    what: str  # the English text, as editors write it
    source: str


@dataclass(frozen=True)
class Confirmation:
    """Someone of the deploying organisation confirmed a fact as it was on its `reviewed` date."""

    fact: str
    reviewed: dt.date | None
    by: str
    at: dt.date


@dataclass(frozen=True)
class Standing:
    """A fact and what the confirmations say of it."""

    fact: Fact
    confirmation: Confirmation | None  # one that covers the fact as it is now
    lapsed: Confirmation | None  # else the newest one, made for an earlier version of the fact

    @property
    def confirmed(self) -> bool:
        """Whether a confirmation covers the fact as it is now."""
        return self.confirmation is not None


def facts_to_confirm(flows: FlowSet) -> list[Fact]:
    """Every fact marked `verify: true`: flow nodes first, then directory entries, in file order."""
    facts = [
        Fact(node.ref, f"{node.file}:{node.line}", node.reviewed, node.texts[0], node.source or "")
        for node in flows.nodes.values()
        if node.verify
    ]
    facts.extend(
        Fact(
            f"{DIRECTORY}.{service.id}",
            "directory.yaml",
            service.reviewed,
            f"{service.name}: {service.number or service.ask_at}",
            service.source,
        )
        for service in flows.directory.values()
        if service.verify
    )
    return facts


def standings(facts: Iterable[Fact], confirmations: Sequence[Confirmation]) -> list[Standing]:
    """What the confirmations say of each fact (later entries of the file win)."""
    result = []
    for fact in facts:
        mine = [c for c in confirmations if c.fact == fact.id]
        covering = [c for c in mine if c.reviewed == fact.reviewed]
        result.append(
            Standing(
                fact,
                covering[-1] if covering else None,
                None if covering or not mine else mine[-1],
            )
        )
    return result


def strays(facts: Iterable[Fact], confirmations: Iterable[Confirmation]) -> list[Confirmation]:
    """Confirmations of no fact to confirm: a mistyped id, or a fact no longer marked `verify`."""
    ids = {fact.id for fact in facts}
    return [c for c in confirmations if c.fact not in ids]


def confirm(fact: Fact, *, by: str, today: dt.date) -> Confirmation:
    """A confirmation of the fact as it is now."""
    return Confirmation(fact.id, fact.reviewed, by, today)
