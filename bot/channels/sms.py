"""SMS: replies as short numbered lists, in the letters she chose, within a segment budget; and the way out.

The way out is one `Sender` (`SmsSender`) on top of any `SmsProvider`: Twilio first (bot/channels/twilio.py);
a local gateway fits by implementing `SmsProvider`, without touching the engine, the service or the
dispatcher.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bot.conversation.model import Channel, Reply, Script
from bot.conversation.text import SmsCount, sms_segments, to_latin, to_plain_cyrillic
from bot.senders import Failed, Outgoing, SendResult, Sent

MENU_NUMBER = "0"
DELETE_SMS = "delete_sms"  # the command that erases her messages at the provider (see bot/effects.py)


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


def segments_report(texts: Sequence[str]) -> list[str]:
    """One line per text for `hamroh sms segments`: encoding, segments billed, length ("ucs2 2 97")."""
    return [f"{count.encoding} {count.segments} {count.chars}" for count in map(sms_segments, texts)]


class SmsProvider(Protocol):
    """An SMS provider's API, as the sender needs it. Methods never raise for the provider's answer.

    Reasons in the results name the provider's status and error code only: never the number, the text or
    a secret, because the dispatcher stores and logs them.
    """

    @property
    def credential(self) -> str:
        """A non-secret name of the account (Twilio's account SID): one active sender per credential."""
        ...

    async def send(self, to: str, text: str) -> SendResult:
        """Send one SMS to an E.164 number; `Sent` carries the provider's message id."""
        ...

    async def delete(self, message_id: str) -> SendResult:
        """Delete a message (sent or received) kept at the provider; one already gone counts as deleted."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class SmsSender:
    """The dispatcher's `Sender` for channel "sms", on top of any provider."""

    channel: Channel = "sms"

    def __init__(self, provider: SmsProvider) -> None:
        self.provider = provider

    @property
    def credential(self) -> str:
        """The provider account's non-secret name."""
        return self.provider.credential

    def cost(self, message: Outgoing) -> int:
        """Segments billed for a message; a command takes one unit."""
        text = message.body.get("text")
        if "op" in message.body or not isinstance(text, str):
            return 1
        return sms_segments(text).segments

    async def send(self, message: Outgoing) -> SendResult:
        """Send a message (`{"text": ...}`) or run a command (`{"op": "delete_sms", "sids": [...]}`)."""
        if message.channel != "sms":
            return Failed(f"not an SMS ({message.channel})")
        op = message.body.get("op")
        if op is not None:
            if op == DELETE_SMS:
                return await self._delete(message.body.get("sids"))
            return Failed(f"unknown SMS command {str(op)[:40]!r}")
        text = message.body.get("text")
        if not isinstance(text, str) or not text:
            return Failed("no text to send")
        return await self.provider.send(message.address, text)

    async def close(self) -> None:
        """Release the provider's connections."""
        await self.provider.close()

    async def _delete(self, sids: object) -> SendResult:
        if not isinstance(sids, list) or not all(isinstance(sid, str) and sid for sid in sids):
            return Failed("delete_sms needs a list of message ids")
        # In order, stopping at the first that must wait: the retry runs the whole list again, and those
        # already deleted answer "not found", which counts as done.
        for sid in sids:
            result = await self.provider.delete(sid)
            if not isinstance(result, Sent):
                return result
        return Sent()
