"""The pure engine, on a small flow set of its own: conversations with a frozen clock, no database."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import pytest

from bot.conversation.engine import step
from bot.conversation.flowload import load_flowset
from bot.conversation.flows import FlowSet
from bot.conversation.i18n import Translations
from bot.conversation.model import (
    NEWS_TOPICS,
    CaseLeft,
    Channel,
    ClearChatRequested,
    Course,
    DistrictSet,
    EraseRequested,
    EscalationRequested,
    Event,
    Input,
    LanguageChanged,
    NewsChanged,
    OpenCase,
    OptedIn,
    OptedOut,
    Reply,
    ScriptChanged,
    Session,
    TopicViewed,
    Turn,
    WroteToCase,
)

DATA = Path(__file__).parent / "data" / "flows"
TAJIK = {
    "Hello. Choose your language.": "Салом. Забонро интихоб кунед.",
    "How can I help?": "Чӣ тавр кӯмак кунам?",
    "Legal rights": "Ҳуқуқҳо",
    "Menu": "Меню",
    "A father must pay for his children.": "Падар бояд барои фарзандонаш пардозад.",
    "More": "Боз",
}
RUSSIAN = {"Hello. Choose your language.": "Здравствуйте. Выберите язык.", "How can I help?": "Чем помочь?"}


@pytest.fixture(scope="module")
def small() -> FlowSet:
    translations = Translations(MappingProxyType({"tg": TAJIK, "ru": RUSSIAN}))
    return load_flowset(DATA, translations, idle_reset=timedelta(days=14))


@dataclass
class Talk:
    """One woman talking to the engine; the session is saved and read back between turns, as in the store."""

    flows: FlowSet
    session: Session = field(default_factory=Session)
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 28, 9, 0, tzinfo=UTC))
    courses: tuple[Course, ...] = ()
    last: Turn | None = None

    channel: Channel = "sms"

    def send(self, text: str = "", *, button: str | None = None, media: bool = False) -> Reply:
        turn = step(
            self.flows,
            self.session,
            Input(text, button, media, self.channel),
            self.now,
            courses=self.courses,
        )
        self.session = Session.from_json(turn.session.to_json())
        self.last = turn
        assert turn.replies, f"no reply to {text!r}"
        return turn.replies[-1]

    @property
    def events(self) -> tuple[Event, ...]:
        assert self.last is not None
        return self.last.events


def test_first_contact_is_greeted_in_both_languages_and_picks_one(small: FlowSet) -> None:
    talk = Talk(small)
    hello = talk.send("салом")
    assert "Салом. Забонро интихоб кунед." in hello.text
    assert "Здравствуйте. Выберите язык." in hello.text
    assert [o.label for o in hello.options] == ["Тоҷикӣ", "Русский"]
    menu = talk.send("1")
    assert menu.text == "Чӣ тавр кӯмак кунам?"
    assert menu.options[0].label == "Ҳуқуқҳо"
    assert menu.menu is None  # no "0 Menu" on the menu itself
    assert talk.events == (LanguageChanged("tg"),)


def test_a_language_can_be_picked_by_button_or_by_name(small: FlowSet) -> None:
    assert Talk(small).send(button="lang:ru").text == "Чем помочь?"
    assert Talk(small).send("русский").text == "Чем помочь?"
    assert Talk(small).send("ТОЧИКИ").text == "Чӣ тавр кӯмак кунам?"


def test_numbers_pick_options_and_zero_goes_to_the_menu(small: FlowSet) -> None:
    talk = Talk(small, Session(lang="en", node="main.menu"))
    assert talk.send("1").text == "Which question?"
    first = talk.send(" 1. ")
    assert first.text == "A father must pay for his children."
    assert talk.events == (TopicViewed("legal.alimony"),)
    assert talk.send("0").text == "How can I help?"


def test_multi_part_content_is_paged_with_more_and_offers_its_source(small: FlowSet) -> None:
    talk = Talk(small, Session(lang="en", node="legal.menu"))
    first = talk.send("1")
    assert [o.label for o in first.options] == ["More"]
    second = talk.send("1")
    assert second.text == "For 1 child, a quarter of his income."
    assert [o.label for o in second.options] == ["Divorce", "Source"]
    assert talk.events == ()  # the topic is counted once, not per page
    source = talk.send("2")
    assert source.text == "Source: Family Code, art. 81"
    assert talk.send("1").text.startswith("Divorce goes")


def test_an_old_more_button_shows_the_part_it_names(small: FlowSet) -> None:
    talk = Talk(small, Session(lang="en", node="main.menu"))
    assert talk.send(button="legal.alimony:more:1").text == "For 1 child, a quarter of his income."


def test_free_text_naming_a_topic_leads_to_it_however_typed(small: FlowSet) -> None:
    for typed in ("алимент", "алимен", "aliment", "АЛИМЕНТЫ", "Алименты нужны", "нафака"):
        talk = Talk(small, Session(lang="ru", node="main.menu"))
        assert talk.send(typed).text == "A father must pay for his children.", typed
    for typed in ("развод", "талок", "ЗАГС", "zags"):
        talk = Talk(small, Session(lang="ru", node="main.menu"))
        assert talk.send(typed).text.startswith("Divorce"), typed


def test_input_that_matches_nothing_on_sms_says_which_numbers_she_can_reply(small: FlowSet) -> None:
    talk = Talk(small, Session(lang="en", node="legal.menu"))
    reply = talk.send("qwertyuiop")
    assert reply.text == "Sorry, I did not understand. Reply with a number: 1-2, 0."
    assert (reply.options, reply.menu) == ((), None)  # one short SMS, not the whole screen again
    assert talk.session.node == "legal.menu"
    assert talk.send("7").text == "Sorry, I did not understand. Reply with a number: 1-2, 0."
    assert talk.send("2").text.startswith("Divorce")  # the numbers still mean what the screen showed


def test_the_numbers_she_is_told_are_those_of_her_screen(small: FlowSet) -> None:
    on_menu = Talk(small, Session(lang="en", node="main.menu"))
    assert on_menu.send("zzz").text.endswith("Reply with a number: 1-3.")  # no 0 on the menu itself
    one_option = Talk(small, Session(lang="en", node="main.help"))
    assert one_option.send("zzz").text.endswith("Reply with a number: 1-2, 0.")  # and Source


def test_input_that_matches_nothing_on_telegram_asks_her_to_tap_a_button(small: FlowSet) -> None:
    talk = Talk(small, Session(lang="en", node="legal.menu"), channel="telegram")
    reply = talk.send("qwertyuiop")
    assert reply.text == "Sorry, I did not understand. Tap a button."
    assert [o.label for o in reply.options] == ["Child support", "Divorce"]
    assert reply.menu == "Menu"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "😀😀😀",
        "\x00\x07\x1b[31m",
        "\u200b\u200f\u202e",
        "x" * 10_000,
        "'; DROP TABLE contacts; --",
        "<script>alert(1)</script>",
        "Алимент 😀 aliment\u200b",
        "١٢٣",
        "\ud800",
    ],
)
def test_any_input_gets_a_sensible_reply_and_never_raises(small: FlowSet, text: str) -> None:
    for session in (
        Session(),
        Session(lang="tg", node="main.menu"),
        Session(lang="en", node="legal.district"),
    ):
        reply = Talk(small, session).send(text)
        assert reply.text


def test_media_gets_a_kind_reply_in_her_language(small: FlowSet) -> None:
    reply = Talk(small, Session(lang="en", node="main.menu")).send(media=True)
    assert reply.text == "I can read only text."


def test_global_words_work_everywhere(small: FlowSet) -> None:
    talk = Talk(small, Session(lang="ru", node="legal.menu"))
    assert talk.send("МЕНЮ").text == "Чем помочь?"
    assert talk.send("помощь").text.startswith("We are here.")
    assert talk.send("забон").text == "Choose a language."
    assert talk.send("feхрист").text == "Чем помочь?"


def test_back_returns_to_where_she_was(small: FlowSet) -> None:
    talk = Talk(small, Session(lang="en", node="main.menu"))
    talk.send("1")
    talk.send("2")
    assert talk.send("back").text == "Which question?"
    assert talk.send("назад").text == "How can I help?"
    assert talk.send("back").text == "How can I help?"


def test_stop_opts_her_out_and_only_start_brings_her_back(small: FlowSet) -> None:
    talk = Talk(small, Session(lang="en", node="legal.menu"))
    assert talk.send("STOP").text.startswith("You will get no more messages")
    assert talk.events == (OptedOut(),)
    quiet = step(small, talk.session, Input("hello"), talk.now)
    assert quiet.replies == ()
    assert talk.send("старт").text == "Welcome back."
    assert talk.events == (OptedIn(),)
    assert not talk.session.opted_out


def test_a_stop_word_inside_a_sentence_is_not_a_stop(small: FlowSet) -> None:
    talk = Talk(small, Session(lang="en", node="main.menu"))
    talk.send("please do not stop")
    assert not talk.session.opted_out


def test_she_returns_after_weeks_to_the_menu_in_her_language(small: FlowSet) -> None:
    talk = Talk(small, Session(lang="ru", node="main.menu"))
    talk.send("1")
    talk.now += timedelta(days=30)
    assert talk.send("5").text == "Sorry, I did not understand. Reply with a number: 1-3."
    assert talk.session.node == "main.menu"
    assert talk.session.lang == "ru"
    assert talk.send("1").text == "Which question?"


def test_district_question_recognises_old_names_and_lists_courses(small: FlowSet) -> None:
    talk = Talk(small, Session(lang="en", node="main.menu"))
    talk.courses = (
        Course({"en": "Sewing", "tg": "Дӯзандагӣ"}, "dusti", date(2027, 1, 11)),
        Course({"en": "Baking"}, "bokhtar"),
        Course({"en": "Finance"}, None),
    )
    assert talk.send("2").text == "Which district do you live in?"
    assert talk.send("Mars").text == "I do not know that district. For example, Dusti."
    assert talk.send("7").text == "I do not know that district. For example, Dusti."  # not "a number"
    listing = talk.send("Джиликуль")
    assert talk.events == (DistrictSet("dusti"), TopicViewed("training.courses"))
    labels = [o.label for o in listing.options]
    assert labels[:2] == ["Sewing", "Finance"]  # courses are options: a number or a button chooses one
    assert "Baking" not in labels
    talk.send("0")
    assert talk.send("2").text.startswith("Training.")  # known district: not asked again
    assert talk.send("3").text == "Which district do you live in?"  # "Change district", after 2 courses
    assert "Baking" in [o.label for o in talk.send("бохтар").options]


def test_no_courses_in_her_district_says_so(small: FlowSet) -> None:
    talk = Talk(small, Session(lang="en", node="main.menu", district="dusti"))
    assert "No courses in your district yet." in talk.send("2").text


def test_actions_emit_events(small: FlowSet) -> None:
    talk = Talk(small, Session(lang="en", node="main.settings"))
    assert talk.send("1").text == "Your SMS will be in Latin letters."
    assert talk.events == (ScriptChanged("latin"),)
    assert talk.session.script == "latin"
    talk.send(button="main.menu:settings")
    talk.send("2")
    assert talk.events == (NewsChanged(NEWS_TOPICS),)
    assert talk.session.subscribed
    talk.send(button="main.menu:settings")
    talk.send("3")  # on SMS: how to delete our SMS (clearing a chat is Telegram's)
    assert talk.events == ()
    talk.send(button="main.menu:settings")
    talk.send("4")
    assert talk.events == (EscalationRequested("general", "asked"),)  # from settings: no topic queue


def test_erase_asks_first_then_forgets_everything(small: FlowSet) -> None:
    talk = Talk(small, Session(lang="en", node="main.menu", district="dusti", subscribed=True))
    assert talk.send("delete my data").text == "Delete everything Hamroh knows about you?"
    assert talk.events == ()
    assert talk.send("1").text == "Everything about you has been deleted."
    assert talk.events == (EraseRequested(),)
    assert talk.session.district is None
    assert not talk.session.subscribed


def test_a_button_from_before_a_content_change_leads_to_the_menu(small: FlowSet) -> None:
    talk = Talk(small, Session(lang="en", node="legal.menu"))
    assert talk.send(button="legal.gone:x").text == "How can I help?"
    assert talk.send(button="legal.menu:gone").text == "How can I help?"
    assert talk.send(button="💥" * 40).text == "How can I help?"


def test_a_session_on_a_node_that_no_longer_exists_starts_at_the_menu(small: FlowSet) -> None:
    talk = Talk(small, Session(lang="en", node="legal.removed"))
    assert talk.send("hello").text.startswith("Sorry")
    assert talk.session.node == "main.menu"


def test_services_show_numbers_from_the_directory_or_where_to_ask(small: FlowSet) -> None:
    talk = Talk(small, Session(lang="en", node="main.menu"))
    reply = talk.send(button="legal.hotlines:x")  # unknown option: menu
    assert reply.text == "How can I help?"
    node = small.node("legal.hotlines")
    from bot.conversation.screens import screen

    text = screen(small, Session(lang="en"), node, 0, ()).text
    assert "Emergency: 112" in text
    assert "Shelter: Ask at your jamoat." in text


def test_the_engine_is_deterministic(small: FlowSet) -> None:
    first, second = Talk(small), Talk(small)
    for text in ("hi", "1", "1", "алимент", "1", "2", "back", "stop", "start"):
        assert first.send(text) == second.send(text)
        assert first.session == second.session


def test_on_telegram_a_topic_is_one_message_with_its_buttons(small: FlowSet) -> None:
    talk = Talk(small, Session(lang="en", node="legal.menu"), channel="telegram")
    topic = talk.send(button="legal.menu:alimony")
    assert topic.text == "A father must pay for his children.\nFor 1 child, a quarter of his income."
    assert [o.label for o in topic.options] == ["Divorce", "Source"]  # no "More"
    assert talk.send("2").text == "Source: Family Code, art. 81"  # a number typed picks a button


def test_options_for_one_channel_are_not_shown_or_counted_on_the_other(small: FlowSet) -> None:
    sms = Talk(small, Session(lang="en", node="main.menu"))
    labels = [o.label for o in sms.send("3").options]
    assert "Delete our SMS" in labels
    assert "Clear chat" not in labels
    assert sms.send(str(labels.index("Delete our SMS") + 1)).text == "Delete our SMS on your phone yourself."
    telegram = Talk(small, Session(lang="en", node="main.menu"), channel="telegram")
    labels = [o.label for o in telegram.send("3").options]
    assert "Clear chat" in labels
    assert "Delete our SMS" not in labels
    assert telegram.send(str(labels.index("Clear chat") + 1)).text == "Delete our messages from this chat?"
    telegram.send("1")
    assert telegram.events == (ClearChatRequested(),)


@pytest.mark.parametrize("typed", ["?", "??", " ？ ", "help", "ПОМОЩЬ", "ёри"])
def test_help_words_and_a_lone_question_mark_lead_to_112_first(small: FlowSet, typed: str) -> None:
    talk = Talk(small, Session(lang="en", node="legal.alimony"))
    reply = talk.send(typed)
    assert talk.session.node == "main.help"
    assert reply.text == "We are here. If in danger, call:\nEmergency: 112"
    assert reply.menu == "Menu"


def test_a_help_word_as_her_first_message_gives_the_help_line_then_the_choice_of_language(
    small: FlowSet,
) -> None:
    turn = step(small, Session(), Input("?"), datetime(2026, 11, 28, 9, 0, tzinfo=UTC))
    assert "112" in turn.replies[0].text
    assert turn.replies[-1].options[0].key == "lang:tg"
    assert turn.session.lang is None


@pytest.mark.parametrize(
    ("typed", "lang"),
    [("русский", "ru"), ("русӣ", "ru"), ("По-русски", "ru"), ("тоҷикӣ", "tg"), ("tojiki", "tg")],
)
def test_naming_a_language_switches_to_it_anywhere(small: FlowSet, typed: str, lang: str) -> None:
    start = "tg" if lang == "ru" else "ru"
    talk = Talk(small, Session(lang=start, node="legal.alimony", part=1))
    talk.send(typed)
    assert (talk.session.lang, talk.session.node) == (lang, "main.menu")
    assert talk.events[0] == LanguageChanged(lang)


@pytest.mark.parametrize(
    "typed",
    [
        "удалить мои данные",
        "Пожалуйста, удалите мои данные!",
        "забудь меня",
        "маълумотамро нест кунед",
        "malumotamro nest kuned",
    ],
)
def test_asking_to_delete_her_data_in_her_own_words_is_confirmed_first(small: FlowSet, typed: str) -> None:
    talk = Talk(small, Session(lang="ru", node="legal.alimony"))
    assert talk.send(typed).text == "Delete everything Hamroh knows about you?"
    assert talk.events == ()  # nothing is deleted before she says yes
    talk.send("1")
    assert talk.events == (EraseRequested(),)


def test_words_near_an_erase_phrase_do_not_ask_to_erase(small: FlowSet) -> None:
    talk = Talk(small, Session(lang="ru", node="main.menu"))
    talk.send("забудьте меняю")
    assert talk.session.node != "main.erase"


def test_the_greeting_says_free_only_where_the_deployment_says_so(small: FlowSet) -> None:
    assert "free" not in Talk(small).send("hi").text
    free = replace(small, service_is_free=True)
    assert "Hamroh is free." in Talk(free).send("hi").text


def test_course_dates_are_written_in_her_language(small: FlowSet) -> None:
    from bot.conversation.screens import date_in_words

    day = date(2027, 1, 11)
    assert date_in_words(day, "tg") == "11 январи 2027"
    assert date_in_words(day, "ru") == "11 января 2027"
    assert date_in_words(date(2027, 5, 2), "tg") == "2 майи 2027"


@pytest.mark.parametrize("word", ["clear", "/clear", "очистить"])
def test_on_sms_clear_this_chat_says_how_to_delete_sms_and_deletes_nothing(small: FlowSet, word: str) -> None:
    talk = Talk(small, Session(lang="en", node="main.menu"))
    assert talk.send(word).text == "Delete our SMS on your phone yourself."
    assert talk.events == ()
    talk.send(button="main.clear_chat:clear")  # an old Telegram button cannot clear an SMS either
    assert talk.events == ()


def test_naming_a_language_during_a_case_switches_it_and_keeps_the_case(small: FlowSet) -> None:
    case = OpenCase(status="active")
    now = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    turn = step(small, Session(lang="tg", node="main.menu"), Input("по-русски"), now, case=case)
    assert turn.session.lang == "ru"
    assert LanguageChanged("ru") in turn.events
    assert not any(isinstance(e, (WroteToCase, CaseLeft)) for e in turn.events)


@pytest.mark.parametrize("typed", ["news", "NEWS", "хабар", "xabar"])
def test_a_word_for_news_alone_opens_the_subscription_screen(small: FlowSet, typed: str) -> None:
    talk = Talk(small, Session(lang="en", node="legal.alimony"))
    assert talk.send(typed).text == "News about courses?"


def test_a_word_for_news_inside_a_sentence_is_only_a_word(small: FlowSet) -> None:
    talk = Talk(small, Session(lang="en", node="main.menu"))
    talk.send("хабар нест")
    assert talk.session.node != "main.announcements"
