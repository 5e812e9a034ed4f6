"""The turn being built: the session as it changes, and what the turn says and does.

Shared by the engine and its actions (bot.conversation.actions); nothing here is kept after the turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.conversation.flows import FlowSet, Node
from bot.conversation.model import Channel, Counsellors, Course, Event, OpenCase, Reply, Session, Turn

ALWAYS_OPEN = Counsellors()


@dataclass
class Acc:
    """The turn being built: the session as it changes, and what it says and does."""

    flows: FlowSet
    session: Session
    courses: Sequence[Course]
    replies: list[Reply]
    events: list[Event]
    case: OpenCase | None = None
    counsellors: Counsellors = ALWAYS_OPEN
    channel: Channel = "sms"
    # What she typed this turn for a training partner (her name, a phone number): it goes into the
    # enrolment event of this very turn and is never saved in her session.
    typed: dict[str, str] = field(default_factory=dict)

    def turn(self) -> Turn:
        """The finished turn."""
        return Turn(self.session, tuple(self.replies), tuple(self.events))

    @property
    def lang(self) -> str:
        """Her language (Tajik until she chose one)."""
        return self.session.lang or "tg"

    @property
    def node(self) -> Node | None:
        """The node she is at, if it still exists."""
        ref = self.session.node
        return self.flows.nodes.get(ref) if ref else None
