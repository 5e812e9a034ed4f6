"""Whole conversations in Tajik and Russian with the real content, through the service, on both databases."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel import select

from bot.channels.simulator import take
from bot.conversation.flows import FlowSet
from bot.conversation.model import Channel
from bot.service import Hamroh, Inbound
from bot.store import Case, Contact, RequestLogEntry
from bot.store.db import transaction
from tests.conftest import Clock

TAJIK_LETTERS = set("ҳҷқғӣӯҲҶҚҒӢӮ")


@dataclass
class Woman:
    """One woman on one channel, talking to the real service."""

    hamroh: Hamroh
    channel: Channel
    address: str
    lang: str = "tg"
    received: list[dict[str, Any]] = field(default_factory=list)

    def t(self, msgid: str) -> str:
        return self.hamroh.flows.text(self.lang, msgid)

    async def send(self, text: str = "", button: str | None = None) -> str:
        outcome = await self.hamroh.handle(Inbound(self.channel, self.address, text=text, button=button))
        self.received = await take(self.hamroh, outcome.outbox_ids, self.hamroh.clock())
        assert self.received, f"no reply to {text or button!r}"
        return str(self.received[-1]["text"])

    async def start(self) -> str:
        """Her first message and her choice of language; returns the menu."""
        if self.channel == "telegram":
            await self.send("/start")
            return await self.send(button=f"lang:{self.lang}")
        await self.send("Салом")
        return await self.send("1" if self.lang == "tg" else "2")

    def buttons(self) -> list[str]:
        """Telegram: the labels of the buttons under the last message."""
        rows = self.received[-1]["reply_markup"]["inline_keyboard"]
        return [button["text"] for row in rows for button in row]

    async def tap(self, label_msgid: str) -> str:
        """Telegram: tap the button whose label is this msgid in her language."""
        rows = self.received[-1]["reply_markup"]["inline_keyboard"]
        buttons = {b["text"]: b["callback_data"] for row in rows for b in row}
        label = self.t(label_msgid)
        assert label in buttons, f"{label!r} not among {list(buttons)}"
        assert len(buttons[label].encode()) <= 64
        return await self.send(button=buttons[label])


def number_of(reply: str, label: str) -> str:
    """The number an SMS list gives an option."""
    for line in reply.splitlines():
        number, _, text = line.partition(" ")
        if text == label and number.isdigit():
            return number
    raise AssertionError(f"{label!r} not in\n{reply}")


async def test_a_conversation_in_tajik_by_sms(hamroh: Hamroh, flows: FlowSet) -> None:
    her = Woman(hamroh, "sms", "+992 92 700 00 01", "tg")
    welcome = await her.send("Салом")
    assert her.t("Hello! I am Hamroh, help for women. Language:") in welcome
    assert flows.text("ru", "Hello! I am Hamroh, help for women. Language:") in welcome
    menu = await her.send("1")
    assert menu.startswith(her.t("How can I help you?"))
    assert TAJIK_LETTERS & set(menu), "the menu should be in Tajik"
    rights = await her.send(number_of(menu, her.t("Your rights")))
    assert rights.startswith(her.t(flows.node("legal.menu").texts[0]))
    alimony = await her.send("алимен")  # typed without the last letter
    assert alimony.startswith(her.t("A father must support his children."))
    pages = [alimony]
    while f"1 {her.t('More')}" in pages[-1]:  # one short SMS at a time, as far as she wants
        pages.append(await her.send("1"))
    assert "1/4" in "".join(pages)
    assert "1/3" in "".join(pages)
    assert (await her.send("0")).startswith(her.t("How can I help you?"))
    legal_menu = her.t(flows.node("legal.menu").texts[0])
    assert (await her.send("хукук")).startswith(legal_menu)  # "ҳуқуқ" typed plainly


async def test_a_conversation_in_russian_on_telegram_with_buttons(hamroh: Hamroh) -> None:
    her = Woman(hamroh, "telegram", "70001", "ru")
    await her.send("/start")
    menu = await her.send(button="lang:ru")
    assert menu.startswith(her.t("How can I help you?"))
    await her.tap("Talk to someone")
    answer = await her.tap("I feel bad")
    assert answer
    async with transaction(hamroh.engine) as db:
        (case,) = (await db.exec(select(Case))).all()
        topics = [e.topic for e in (await db.exec(select(RequestLogEntry))).all()]
    assert case.queue == "support"
    assert "escalation.support" in topics
    await her.send("развод")  # her words now go to the counsellor, not to the menus
    left = await her.send("меню")
    assert left.startswith(her.t("You left the chat with the counsellor."))
    assert her.t("How can I help you?") in left


async def test_she_can_switch_language_at_any_time(hamroh: Hamroh) -> None:
    her = Woman(hamroh, "sms", "+992927000002", "tg")
    await her.send("hi")
    await her.send("1")
    language = await her.send("язык")
    assert language.startswith(her.t("Choose a language."))
    her.lang = "ru"
    switched = await her.send(number_of(language, hamroh.flows.text("tg", "Russian")))
    assert switched.startswith(her.t("Done. The menu is now in Russian."))
    async with transaction(hamroh.engine) as db:
        (contact,) = (await db.exec(select(Contact))).all()
    assert contact.lang == "ru"


async def test_courses_are_listed_by_her_district_old_names_too(hamroh: Hamroh, clock: Clock) -> None:
    from bot.demo import seed_example_courses

    await seed_example_courses(hamroh.engine, clock())
    her = Woman(hamroh, "sms", "+992927000003", "ru")
    await her.send("2")
    menu = await her.send("0")
    training = await her.send(number_of(menu, her.t("Training and work")))
    question = await her.send(number_of(training, her.t("Courses near me")))
    assert question.startswith(her.t("Which district do you live in? For example: Bokhtar."))
    assert (await her.send("Марс")).startswith(
        her.t("I do not know this district. Write it again, for example: Bokhtar.")
    )
    listing = await her.send("Курган-Тюбе")  # Bokhtar's old name
    assert "ПРИМЕР: Швейное дело" in listing
    assert "ПРИМЕР: Финансовая грам…" in listing  # a long title is cut to fit its SMS line
    assert "Выпечка" not in listing  # a Khujand course


async def test_she_can_ask_for_the_source_of_a_fact(hamroh: Hamroh) -> None:
    her = Woman(hamroh, "sms", "+992927000004", "tg")
    await her.send("1")
    marriage = await her.send("никох")
    for _ in range(10):
        if her.t("Source") in marriage:
            break
        marriage = await her.send(number_of(marriage, her.t("More")))
    source = await her.send(number_of(marriage, her.t("Source")))
    assert source.startswith(her.t("Source:"))


async def test_delete_my_data_in_tajik_erases_her(hamroh: Hamroh) -> None:
    her = Woman(hamroh, "sms", "+992927000005", "tg")
    await her.send("1")
    question = await her.send("маълумоти маро нест кунед")
    assert question.startswith(her.t("Delete everything Hamroh knows about you? This cannot be undone."))
    done = await her.send(number_of(question, her.t("Yes, delete")))
    assert done.startswith(her.t("Your data has been deleted."))
    async with transaction(hamroh.engine) as db:
        assert (await db.exec(select(Contact))).all() == []
