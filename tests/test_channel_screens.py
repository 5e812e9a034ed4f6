"""What each channel shows her, with the real content, through the service: Telegram a topic whole with its
buttons, SMS one short screen at a time; her own words for help, for deleting her data, for a language."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlmodel import select

from bot.conversation.engine import step
from bot.conversation.flows import FlowSet
from bot.conversation.model import Channel, Input, Session
from bot.service import Hamroh
from bot.store import Contact
from bot.store.db import transaction
from tests.test_conversations import Woman, number_of

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ADDRESSES: dict[Channel, str] = {"sms": "+992927100001", "telegram": "71001"}
HELP_WORDS = ["?", "??", "кӯмак", "кумак", "ёрдам", "yordam", "ёрӣ", "помощь", "help"]
LANGUAGE_NAMES = [("русский", "ru"), ("русӣ", "ru"), ("по-русски", "ru"), ("тоҷикӣ", "tg"), ("tojiki", "tg")]
ERASE_PHRASINGS = [
    ("tg", "маълумоти манро нест кунед"),
    ("tg", "Маълумотамро нест кунед!"),
    ("tg", "malumotamro nest kuned"),
    ("tg", "илтимос, маълумоти маро нест кунед"),
    ("ru", "удалите мои данные"),
    ("ru", "Удали мои данные"),
    ("ru", "забудь меня"),
    ("ru", "пожалуйста, удалите мои данные"),
    ("ru", "udalite moi dannye"),
]


def first_text(flows: FlowSet, ref: str, lang: str) -> str:
    return flows.text(lang, flows.node(ref).texts[0])


def where_after(flows: FlowSet, typed: str, lang: str = "ru") -> Session:
    return step(flows, Session(lang=lang, node="legal.alimony"), Input(typed), NOW).session


@pytest.mark.parametrize(("lang", "typed"), ERASE_PHRASINGS)
def test_every_way_she_asks_to_delete_her_data_reaches_the_question(
    flows: FlowSet, lang: str, typed: str
) -> None:
    turn = step(flows, Session(lang=lang, node="main.menu"), Input(typed), NOW)
    assert turn.session.node == "main.erase"
    assert turn.events == ()  # asked first, deleted only on yes


@pytest.mark.parametrize("typed", HELP_WORDS)
def test_every_help_word_reaches_the_help_screen(flows: FlowSet, typed: str) -> None:
    assert where_after(flows, typed).node == "main.help"


@pytest.mark.parametrize(("typed", "lang"), LANGUAGE_NAMES)
def test_every_name_of_a_language_switches_to_it(flows: FlowSet, typed: str, lang: str) -> None:
    after = where_after(flows, typed, "tg" if lang == "ru" else "ru")
    assert (after.lang, after.node) == (lang, "main.menu")


async def woman_at_menu(hamroh: Hamroh, channel: Channel, lang: str) -> Woman:
    her = Woman(hamroh, channel, ADDRESSES[channel], lang)
    await her.start()
    return her


@pytest.mark.parametrize(
    ("channel", "lang", "typed"),
    [("sms", "tg", "маълумоти манро нест кунед"), ("telegram", "ru", "пожалуйста, удалите мои данные")],
)
async def test_she_asks_to_delete_her_data_in_her_words_and_confirms(
    hamroh: Hamroh, channel: Channel, lang: str, typed: str
) -> None:
    her = await woman_at_menu(hamroh, channel, lang)
    question = await her.send(typed)
    assert question.startswith(first_text(hamroh.flows, "main.erase", lang))
    async with transaction(hamroh.engine) as db:
        assert len((await db.exec(select(Contact))).all()) == 1  # nothing deleted before she says yes
    yes = hamroh.flows.node("main.erase").options[0].label
    if channel == "telegram":
        await her.tap(yes)
    else:
        await her.send(number_of(question, her.t(yes)))
    async with transaction(hamroh.engine) as db:
        assert (await db.exec(select(Contact))).all() == []


@pytest.mark.parametrize(("channel", "typed"), [("sms", "?"), ("telegram", "помощь"), ("sms", "kumak")])
async def test_help_words_give_112_first_and_the_way_to_the_menu(
    hamroh: Hamroh, channel: Channel, typed: str
) -> None:
    her = await woman_at_menu(hamroh, channel, "ru")
    await her.send("алимент")
    help_screen = await her.send(typed)
    assert re.findall(r"\d+", help_screen)[0] == "112"
    if channel == "sms":
        assert f"0 {her.t('Menu')}" in help_screen
    else:
        rows = her.received[-1]["reply_markup"]["inline_keyboard"]
        assert her.t("Menu") in [b["text"] for row in rows for b in row]


@pytest.mark.parametrize("channel", ["sms", "telegram"])
@pytest.mark.parametrize(
    ("typed", "lang"), [("русский", "ru"), ("русӣ", "ru"), ("тоҷикӣ", "tg"), ("tojiki", "tg")]
)
async def test_naming_a_language_switches_to_it_anywhere(
    hamroh: Hamroh, channel: Channel, typed: str, lang: str
) -> None:
    her = await woman_at_menu(hamroh, channel, "ru" if lang == "tg" else "tg")
    await her.send("алимент")
    menu = await her.send(typed)
    assert menu.startswith(first_text(hamroh.flows, "main.menu", lang))
    async with transaction(hamroh.engine) as db:
        (contact,) = (await db.exec(select(Contact))).all()
    assert contact.lang == lang


async def test_on_telegram_a_topic_is_one_message_with_its_buttons(hamroh: Hamroh) -> None:
    her = await woman_at_menu(hamroh, "telegram", "ru")
    topic = await her.send("алименты")
    alimony = hamroh.flows.node("legal.alimony")
    for part in alimony.texts:
        assert her.t(part) in topic
    labels = [b["text"] for row in her.received[-1]["reply_markup"]["inline_keyboard"] for b in row]
    assert her.t("More") not in labels
    assert len(her.received) == 1


async def test_on_sms_a_long_topic_comes_one_short_screen_at_a_time(hamroh: Hamroh) -> None:
    her = await woman_at_menu(hamroh, "sms", "ru")
    first = await her.send("алименты")
    alimony = hamroh.flows.node("legal.alimony")
    assert first.startswith(her.t(alimony.texts[0]))
    assert f"1 {her.t('More')}" in first
    assert her.t(alimony.texts[1]) not in first


async def test_what_she_can_do_when_her_message_matches_nothing(hamroh: Hamroh) -> None:
    sms = await woman_at_menu(hamroh, "sms", "ru")
    await sms.send("алименты")
    sorry = await sms.send("qwertyuiop")
    assert re.search(r"\d(-\d)?, 0", sorry), sorry  # the numbers of the screen she sees, in one SMS
    assert f"0 {sms.t('Menu')}" not in sorry
    telegram = await woman_at_menu(hamroh, "telegram", "ru")
    await telegram.send("алименты")
    assert await telegram.send("qwertyuiop") == telegram.t(hamroh.flows.strings["tap_button"])
    assert telegram.received[-1]["reply_markup"]["inline_keyboard"]  # the buttons come with it


async def test_clear_this_chat_is_offered_on_telegram_and_explained_on_sms(hamroh: Hamroh) -> None:
    sms = await woman_at_menu(hamroh, "sms", "tg")
    explained = await sms.send("очистить чат")
    assert explained.startswith(first_text(hamroh.flows, "main.delete_sms", "tg"))
    telegram = await woman_at_menu(hamroh, "telegram", "tg")
    asked = await telegram.send("очистить чат")
    assert asked.startswith(first_text(hamroh.flows, "main.clear_chat", "tg"))


@pytest.mark.parametrize("typed", ["хабар", "хабарҳо", "новости", "xabar", "news"])
def test_a_word_for_news_alone_opens_the_subscription_screen(flows: FlowSet, typed: str) -> None:
    assert where_after(flows, typed).node == "main.announcements"


def test_news_of_a_missing_husband_is_not_news_to_subscribe_to(flows: FlowSet) -> None:
    assert where_after(flows, "аз шавҳарам хабар нест", "tg").node == "family.missing"
