"""Her situation in her words: each topic of a husband gone is found however she types it, never mistaken
for danger, and reads whole on SMS (part by part) and on Telegram (one message with its buttons)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.conversation import triage
from bot.conversation.engine import step
from bot.conversation.flows import FlowSet
from bot.conversation.model import Input, Session
from bot.conversation.text import fold
from bot.service import Hamroh
from tests.test_conversations import Woman

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)

# What she might write, per topic: Tajik, Tajik without its letters, Tajik in Latin letters, Russian
# (with a Russian transliteration where people write one).
PHRASES: dict[str, list[str]] = {
    "family.money": [
        "пул намефиристад",
        "шавҳарам пул намефиристад",
        "пул намефиристад занг намезанад",
        "шавхарам пул намефиристад",
        "shavharam pul namefiristad",
        "pul namefiristad",
        "не присылает деньги",
        "муж не присылает деньги",
        "муж перестал звонить",
        "не звонит",
        "muzh ne prisylaet dengi",
    ],
    "family.missing": [
        "аз шавҳарам хабар нест",
        "шавҳарам гум шуд",
        "аз шавхарам хабар нест",
        "shavharam gum shud",
        "gum shud",
        "муж пропал",
        "муж пропал без вести",
        "muzh propal",
    ],
    "family.detained": [
        "шавҳарамро боздошт карданд",
        "шавхарамро боздошт карданд",
        "shavharamro deport kardand",
        "мужа задержали",
        "депортировали",
        "мужа депортировали",
        "muzha zaderzhali",
    ],
    "family.death": [
        "шавҳарам мурд",
        "шавхарам мурд",
        "shavharam murd",
        "шавҳарам вафот кард",
        "муж умер в России",
        "muzh umer v rossii",
    ],
    "family.inheritance": [
        "мерос",
        "мероси шавҳар",
        "merosi shavhar",
        "наследство",
        "наследство мужа",
        "nasledstvo",
    ],
    "family.home": [
        "хона",
        "аз хона ронданд",
        "маро аз хона ронданд",
        "maro az xona rondand",
        "выгнали из дома",
        "жильё",
        "жилье",
        "прописка",
    ],
    "family.paternity": [
        "падарӣ",
        "фарзанд бе никоҳи расмӣ",
        "фарзанд бе никохи расми",
        "padari",
        "farzand be nikohi rasmi",
        "отцовство",
        "установление отцовства",
        "otsovstvo",
    ],
    "family.benefits": [
        "кумакпулӣ",
        "ёрии иҷтимоӣ",
        "кумакпули",
        "ёрии ичтимои",
        "kumakpuli",
        "yorii ijtimoi",
        "пособие",
        "социальная помощь",
        "детские деньги",
        "posobie",
    ],
}

CASES = [(node, phrase) for node, phrases in PHRASES.items() for phrase in phrases]


def where(flows: FlowSet, text: str, lang: str) -> str | None:
    return step(flows, Session(lang=lang, node="main.menu"), Input(text), NOW).session.node


@pytest.mark.parametrize("lang", ["tg", "ru"])
@pytest.mark.parametrize(("node", "typed"), CASES)
def test_her_words_lead_to_the_topic(flows: FlowSet, node: str, typed: str, lang: str) -> None:
    assert where(flows, typed, lang) == node


@pytest.mark.parametrize(("node", "typed"), CASES)
def test_her_words_for_a_topic_are_not_taken_for_danger(flows: FlowSet, node: str, typed: str) -> None:
    assert triage.classify_folded(flows.triage, fold(typed)) is None


def test_the_money_that_stopped_is_the_first_legal_question(flows: FlowSet) -> None:
    assert flows.node("legal.menu").options[0].target == "family.money"


@pytest.mark.parametrize("node", list(PHRASES))
def test_every_topic_says_where_its_facts_come_from(flows: FlowSet, node: str) -> None:
    topic = flows.node(node)
    assert topic.fact, f"{node} states facts: it needs to be a fact node"
    assert topic.source
    assert topic.reviewed is not None


def test_what_is_not_known_is_never_promised(flows: FlowSet) -> None:
    (body,) = [text for text in flows.node("family.death").texts if "body" in text]
    assert "Embassy" in body
    assert "free" not in body.lower()  # who pays to bring a body home is not known
    money = " ".join(flows.node("family.money").texts)
    assert "780 somoni" in money
    assert "two months" not in money


# --- whole conversations through the service ----------------------------------------------------------


def number_of(reply: str, label: str) -> str | None:
    for line in reply.splitlines():
        number, _, text = line.partition(" ")
        if text == label and number.isdigit():
            return number
    return None


# One phrase per topic and language, as she would first write it.
OPENINGS = {
    "family.money": {"tg": "шавхарам пул намефиристад", "ru": "муж не присылает деньги"},
    "family.missing": {"tg": "аз шавҳарам хабар нест", "ru": "муж пропал"},
    "family.detained": {"tg": "шавҳарамро депорт карданд", "ru": "мужа задержали"},
    "family.death": {"tg": "шавҳарам мурд", "ru": "муж умер в России"},
    "family.inheritance": {"tg": "мерос", "ru": "наследство"},
    "family.home": {"tg": "маро аз хона ронданд", "ru": "выгнали из дома"},
    "family.paternity": {"tg": "фарзанд бе никоҳи расмӣ", "ru": "установление отцовства"},
    "family.benefits": {"tg": "кумакпулӣ", "ru": "социальная помощь"},
}


@pytest.mark.parametrize("lang", ["tg", "ru"])
@pytest.mark.parametrize("node", list(OPENINGS))
async def test_by_sms_she_reads_the_topic_part_by_part(
    hamroh: Hamroh, flows: FlowSet, node: str, lang: str
) -> None:
    topic = flows.node(node)
    her = Woman(
        hamroh, "sms", f"+99292700{list(OPENINGS).index(node):02d}{'01' if lang == 'tg' else '02'}", lang
    )
    await her.start()
    reply = await her.send(OPENINGS[node][lang])
    for index, part in enumerate(topic.texts):
        assert reply.startswith(her.t(part)), f"part {index + 1} of {node}:\n{reply}"
        more = number_of(reply, her.t("More"))
        if index < len(topic.texts) - 1:
            assert more is not None, reply
            reply = await her.send(more)
        else:
            assert more is None
    for service in topic.services:
        number = flows.directory[service].number
        assert number is None or number in reply
    for option in topic.options:
        assert number_of(reply, her.t(option.label)) is not None, reply
    assert number_of(reply, her.t("Source")) is not None


@pytest.mark.parametrize("lang", ["tg", "ru"])
@pytest.mark.parametrize("node", list(OPENINGS))
async def test_on_telegram_she_reads_the_topic_in_one_message_with_its_buttons(
    hamroh: Hamroh, flows: FlowSet, node: str, lang: str
) -> None:
    topic = flows.node(node)
    her = Woman(hamroh, "telegram", f"7{list(OPENINGS).index(node):02d}{'1' if lang == 'tg' else '2'}", lang)
    await her.start()
    message = await her.send(OPENINGS[node][lang])
    assert message.startswith(her.t(topic.texts[0]))
    for part in topic.texts:
        assert her.t(part) in message
    buttons = her.buttons()
    for option in topic.options:
        if option.shown_on("telegram"):
            assert her.t(option.label) in buttons
    assert her.t("More") not in buttons
