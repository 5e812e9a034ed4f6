"""The real content, through the pure engine: what she types leads where she means."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.channels.sms import cost, render
from bot.conversation.engine import step
from bot.conversation.flows import FlowSet
from bot.conversation.model import ClearChatRequested, EraseRequested, Input, Session
from bot.conversation.screens import safety
from bot.flowcheck import NUMBER, screens_of

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
    turn = step(flows, Session(lang="tg", node="legal.menu"), Input(command, channel="telegram"), NOW)
    assert turn.session.node == "main.clear_chat"
    assert turn.events == ()


@pytest.mark.parametrize("command", ["очистить", "тоза кардан"])
def test_on_sms_clearing_says_how_to_delete_sms_and_deletes_nothing(flows: FlowSet, command: str) -> None:
    turn = step(flows, Session(lang="tg", node="legal.menu"), Input(command, channel="sms"), NOW)
    assert turn.session.node == "main.delete_sms"
    assert not any(isinstance(e, (ClearChatRequested, EraseRequested)) for e in turn.events)


@pytest.mark.parametrize("lang", ["tg", "ru"])
def test_every_danger_screen_gives_112_first_and_no_source(flows: FlowSet, lang: str) -> None:
    dangers = [node for node in flows.nodes.values() if node.danger]
    assert {"helplines.danger", "safety.violence", "safety.suicide"} <= {node.ref for node in dangers}
    for node in dangers:
        reply = safety(flows, Session(lang=lang, node=node.ref), node)
        assert NUMBER.findall(reply.text)[0] == "112", node.ref
        assert flows.text(lang, flows.strings["source"]) not in [o.label for o in reply.options]


@pytest.mark.parametrize("word", ["?", "кӯмак", "помощь", "help"])
def test_help_words_lead_to_112_first(flows: FlowSet, word: str) -> None:
    turn = step(flows, Session(lang="ru", node="legal.menu"), Input(word), NOW)
    assert turn.session.node == "main.help"
    assert NUMBER.findall(turn.replies[-1].text)[0] == "112"


def test_no_number_without_a_source_is_shown(flows: FlowSet) -> None:
    numbers = {service.number for service in flows.directory.values()}
    assert "103" not in numbers  # an ambulance number no source gives
    for node in flows.nodes.values():
        if node.danger:
            assert "police" not in node.services, f"{node.ref}: 112 on a danger screen, not 102"


@pytest.mark.parametrize("lang", ["tg", "ru"])
def test_most_sms_screens_fit_one_segment(flows: FlowSet, lang: str) -> None:
    costs = [cost(render(reply)).segments for _, _, reply in screens_of(flows, lang)]
    assert max(costs) <= 2
    assert sum(c == 1 for c in costs) / len(costs) >= 0.6


def test_only_the_free_greeting_says_hamroh_is_free(flows: FlowSet) -> None:
    for node in flows.nodes.values():
        for text in node.texts:
            if "Hamroh" in text and node.ref != "main.welcome_free":
                assert "free" not in text.lower(), f"{node.ref}: {text}"


def test_labels_promise_only_what_answers(flows: FlowSet) -> None:
    labels = {option.label for node in flows.nodes.values() for option in node.options}
    assert not [label for label in labels if "lawyer" in label.lower() or "psycholog" in label.lower()]
