"""What the dispatcher hands a channel, and what a channel answers. Channels implement `Sender`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from bot.conversation.model import Channel


@dataclass(frozen=True)
class Outgoing:
    """One outbox row, opened: the address and body in plain form, for the sender only."""

    id: int
    channel: Channel
    address: str  # "+992..." or "tg:<chat id>"
    body: dict[str, Any]  # a message ({"text": ..., "reply_markup": ...}) or a command ({"op": ...})
    kind: str  # reply | bulk | command
    contact_id: int | None


@dataclass(frozen=True)
class Sent:
    """The provider took it. `provider_ids`: Telegram message ids or Twilio message SIDs it created."""

    provider_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class RetryLater:
    """A passing failure (429, 5xx, a timeout): try again, after `after` seconds when the provider said."""

    reason: str
    after: float | None = None


@dataclass(frozen=True)
class Failed:
    """A permanent failure (400, 403...). `unreachable`: she blocked the bot or opted out at the carrier."""

    reason: str
    unreachable: bool = False


SendResult = Sent | RetryLater | Failed


class Sender(Protocol):
    """A channel's way out. One sender per channel credential; the dispatcher keeps its rate limits."""

    channel: Channel

    @property
    def credential(self) -> str:
        """A non-secret name of the credential (bot id, account SID): one active sender per credential."""
        ...

    def cost(self, message: Outgoing) -> int:
        """Rate-limit units this message takes: 1 a Telegram message, its segments for an SMS."""
        ...

    async def send(self, message: Outgoing) -> SendResult:
        """Send a message or run a command; never raises for a provider's answer, only returns it."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
