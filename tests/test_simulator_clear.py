"""The simulated Telegram chat: message ids as Telegram gives them, and "Clear this chat" naming them."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from bot import outbox
from bot.channels.simulator import Received, buttons, new_message_id, receive
from bot.service import Hamroh, Inbound
from bot.store import ChatMessage, OutboxMessage
from bot.store.db import transaction
from tests.conftest import Clock

CHAT = "tg:100001"


async def writes(hamroh: Hamroh, text: str) -> tuple[int, Received]:
    """She types a message: the id it got, and what her phone receives."""
    message_id = await new_message_id(hamroh, hamroh.clock())
    inbound = Inbound("telegram", CHAT, text, message_id=message_id, simulated=True)
    return message_id, await receive(hamroh, await hamroh.handle(inbound), hamroh.clock())


async def presses(hamroh: Hamroh, button: dict[str, str]) -> Received:
    """She taps a button (no message of hers): what her phone receives."""
    inbound = Inbound("telegram", CHAT, button=button["callback_data"], simulated=True)
    return await receive(hamroh, await hamroh.handle(inbound), hamroh.clock())


def ids(messages: list[dict[str, Any]]) -> list[int]:
    return [int(m["message_id"]) for m in messages]


async def test_clearing_a_simulated_chat_names_her_and_the_bots_messages_of_the_last_two_days(
    hamroh: Hamroh, clock: Clock
) -> None:
    hello, greeting = await writes(hamroh, "салом")
    menu = await presses(hamroh, buttons(greeting.messages[-1])[0])
    old = [hello, *ids(greeting.messages), *ids(menu.messages)]
    assert old == sorted(set(old)), "ids grow, one for each message of hers and of the bot"

    clock.advance(hours=49)  # Telegram no longer lets a bot delete those
    clear, question = await writes(hamroh, "очистить")
    assert question.commands == []
    done = await presses(hamroh, buttons(question.messages[-1])[0])  # "Yes, delete"

    cleared = [clear, *ids(question.messages)]
    assert done.commands == [{"op": "clear_chat", "message_ids": cleared}]
    (confirmation,) = done.messages
    assert confirmation["message_id"] > max([*old, *cleared])
    async with transaction(hamroh.engine) as db:
        waiting = select(OutboxMessage).where(col(OutboxMessage.status) == outbox.SIMULATOR)
        assert (await db.exec(waiting)).all() == [], "the command is taken once, like the replies"
        remembered = select(ChatMessage.message_id).order_by(col(ChatMessage.message_id))
        assert list((await db.exec(remembered)).all()) == [*old, *cleared, confirmation["message_id"]]


async def test_a_simulated_sms_conversation_has_no_message_ids_and_nothing_to_clear(hamroh: Hamroh) -> None:
    outcome = await hamroh.handle(Inbound("sms", "+992900000001", "очистить", simulated=True))
    received = await receive(hamroh, outcome, hamroh.clock())
    assert received.commands == []
    assert received.messages
    assert all("message_id" not in m for m in received.messages)
