"""The real content, through the pure engine: what she types leads where she means."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.conversation.engine import step
from bot.conversation.flows import FlowSet
from bot.conversation.model import Input, Session

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def where(flows: FlowSet, text: str, lang: str = "tg") -> str | None:
    turn = step(flows, Session(lang=lang, node="main.menu"), Input(text), NOW)
    return turn.session.node


@pytest.mark.parametrize(
    ("typed", "node"),
    [
        ("алимент", "legal.alimony"),
        ("алимен", "legal.alimony"),
        ("aliment", "legal.alimony"),
        ("Алименты", "legal.alimony"),
        ("нафака", "legal.alimony"),
        ("развод", "legal.divorce"),
        ("талоқ", "legal.divorce"),
        ("талок", "legal.divorce"),
        ("ЗАГС", "legal.marriage"),
        ("nikoh", "legal.marriage"),
        ("никох", "legal.marriage"),
        ("хукук", "legal.menu"),
        ("ҳуқуқ", "legal.menu"),
    ],
)
def test_a_topic_word_leads_to_its_topic_however_typed(flows: FlowSet, typed: str, node: str) -> None:
    assert where(flows, typed) == node


@pytest.mark.parametrize("typed", ["насилие", "зӯроварӣ", "зуровари", "мезанад", "бьёт"])
def test_words_of_danger_lead_to_help_first(flows: FlowSet, typed: str) -> None:
    assert where(flows, typed, "ru") == "helplines.danger"


def test_the_danger_screen_shows_emergency_numbers(flows: FlowSet) -> None:
    turn = step(flows, Session(lang="tg", node="main.menu"), Input("зуровари"), NOW)
    text = turn.replies[-1].text
    assert "112" in text
    assert "1313" in text


@pytest.mark.parametrize("command", ["/start", "/menu", "/help", "/language"])
def test_telegram_commands_work_as_words(flows: FlowSet, command: str) -> None:
    turn = step(flows, Session(lang="ru", node="legal.menu"), Input(command), NOW)
    assert turn.session.node in ("main.menu", "main.help", "main.language")


def test_every_screen_offers_a_way_on(flows: FlowSet) -> None:
    from bot.conversation.screens import screen

    for node in flows.nodes.values():
        for part in range(len(node.texts)):
            reply = screen(flows, Session(lang="tg", node=node.ref), node, part, ())
            assert reply.options or reply.menu, f"{node.ref} is a dead end"


@pytest.mark.parametrize("command", ["/clear", "очистить", "тоза кардан"])
def test_clear_this_chat_is_a_command_too_and_asks_first(flows: FlowSet, command: str) -> None:
    turn = step(flows, Session(lang="tg", node="legal.menu"), Input(command), NOW)
    assert turn.session.node == "main.clear_chat"
    assert turn.events == ()
