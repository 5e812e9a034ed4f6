"""News by topic: a word for news, "1" for everything, then narrowing by topic and district, in Tajik on
SMS and in Russian on Telegram, through the service; what the store keeps follows each step."""

from __future__ import annotations

from sqlmodel import select

from bot.announcements import subscriptions
from bot.conversation.engine import step
from bot.conversation.flows import FlowSet
from bot.conversation.model import NEWS_TOPICS, Input, NewsChanged, Session
from bot.service import Hamroh
from bot.store import NEWS_TOPICS as STORED_TOPICS
from bot.store import Contact, Subscription
from bot.store.db import transaction
from tests.conftest import Clock
from tests.test_conversations import Woman, number_of


async def news_of(hamroh: Hamroh) -> tuple[list[str], bool, str | None]:
    """Her topics as the Subscription table holds them, Contact.subscribed and her district."""
    async with transaction(hamroh.engine) as db:
        (contact,) = (await db.exec(select(Contact))).all()
        assert contact.id is not None
        return await subscriptions.topics_of(db, contact.id), contact.subscribed, contact.district


def topic(her: Woman, key: str, on: bool) -> str:
    """A topic's label as the topics screen shows it ("Health: yes")."""
    name = her.t(her.hamroh.flows.strings[f"news_{key}"])
    return her.t("{topic}: yes" if on else "{topic}: no").format(topic=name)


def test_the_engine_and_the_store_know_the_same_topics() -> None:
    assert NEWS_TOPICS == STORED_TOPICS


async def test_in_tajik_by_sms_one_subscribes_to_all_then_she_narrows_and_stops(hamroh: Hamroh) -> None:
    her = Woman(hamroh, "sms", "+992927100001", "tg")
    await her.start()
    screen = await her.send("хабарҳо")
    assert screen.startswith(her.t("Do you want our news?"))
    assert await news_of(hamroh) == ([], False, None)  # opening the screen subscribes nobody
    done = await her.send("1")
    assert done.startswith(her.t("Done. We will send you news."))
    assert her.t("News: all topics.") in done
    assert her.t("For all districts.") in done  # her district is unknown: news from everywhere
    assert await news_of(hamroh) == (list(NEWS_TOPICS), True, None)

    topics = await her.send(number_of(done, her.t("Choose topics")))
    assert topics.startswith(her.t("Turn topics on or off:"))
    health_off = await her.send(number_of(topics, topic(her, "health", True)))
    assert number_of(health_off, topic(her, "health", False))
    assert await news_of(hamroh) == (["training", "legal_aid", "events"], True, None)

    status = await her.send(number_of(health_off, her.t("Done")))
    names = ", ".join(
        her.t(her.hamroh.flows.strings[f"news_{t}"]) for t in ("training", "legal_aid", "events")
    )
    assert her.t("News: {topics}.").format(topics=names) in status
    question = await her.send(number_of(status, her.t("Change district")))
    assert question.startswith(her.t("Which district do you live in? For example: Bokhtar."))
    narrowed = await her.send("Бохтар")
    assert her.t("For the district: {district}.").format(district="Бохтар") in narrowed
    assert await news_of(hamroh) == (["training", "legal_aid", "events"], True, "bokhtar")

    stopped = await her.send(number_of(narrowed, her.t("Stop news")))
    assert stopped.startswith(her.t("Done. We will not send you news. You can still ask questions."))
    assert await news_of(hamroh) == ([], False, "bokhtar")


async def test_in_russian_on_telegram_she_picks_one_topic_with_buttons(hamroh: Hamroh) -> None:
    her = Woman(hamroh, "telegram", "71001", "ru")
    await her.start()
    await her.send("новости")
    assert her.t("Yes, all news") in her.buttons()
    topics = await her.tap("Choose topics")
    assert topics.startswith(her.t("Turn topics on or off:"))
    assert topic(her, "health", False) in her.buttons()
    assert await news_of(hamroh) == ([], False, None)
    rows = her.received[-1]["reply_markup"]["inline_keyboard"]
    health = next(b for row in rows for b in row if b["text"] == topic(her, "health", False))
    await her.send(button=health["callback_data"])
    assert topic(her, "health", True) in her.buttons()
    assert await news_of(hamroh) == (["health"], True, None)
    status = await her.tap("Done")
    assert her.t("News: {topics}.").format(topics=her.t("Health")) in status
    await her.tap("Stop news")
    assert await news_of(hamroh) == ([], False, None)


async def test_news_of_courses_in_the_training_menu_is_the_training_topic_only(hamroh: Hamroh) -> None:
    her = Woman(hamroh, "sms", "+992927100002", "ru")
    menu = await her.start()
    training = await her.send(number_of(menu, her.t("Training and work")))
    done = await her.send(number_of(training, her.t("News of courses")))
    assert done.startswith(her.t("Done. We will send you news of courses."))
    assert await news_of(hamroh) == (["training"], True, None)


async def test_a_stop_word_still_stops_everything_and_keeps_her_choice(hamroh: Hamroh, clock: Clock) -> None:
    her = Woman(hamroh, "sms", "+992927100003", "tg")
    await her.start()
    await her.send("хабар")
    await her.send("1")
    await her.send("стоп")
    async with transaction(hamroh.engine) as db:
        (contact,) = (await db.exec(select(Contact))).all()
        assert contact.opted_out  # nothing goes to her on this channel, news included
        assert len((await db.exec(select(Subscription))).all()) == len(NEWS_TOPICS)


def test_a_session_saved_before_topics_keeps_every_topic(flows: FlowSet) -> None:
    old = {"lang": "tg", "node": "main.menu", "subscribed": True}
    assert Session.from_json(old).news == NEWS_TOPICS
    assert Session.from_json({"lang": "tg", "subscribed": False}).news == ()
    assert Session.from_json({"lang": "tg", "news": ["events", "nonsense", "health"]}).news == (
        "health",
        "events",
    )


def test_topics_toggle_as_events_that_name_the_whole_choice(flows: FlowSet, clock: Clock) -> None:
    session = Session(lang="en", node="main.news_topics")
    turn = step(flows, session, Input(button="main.news_topics:topic:events"), clock())
    assert turn.events == (NewsChanged(("events",)),)
    assert turn.session.subscribed
    turn = step(flows, turn.session, Input(button="main.news_topics:topic:events"), clock())
    assert turn.events == (NewsChanged(()),)
    assert not turn.session.subscribed
