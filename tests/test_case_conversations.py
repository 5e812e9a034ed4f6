"""Conversations with a case: danger whatever the state, her words to a counsellor, leaving, stopping,
erasing, safe hours, service hours, and the case jobs. Small flow set (English), both databases."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlmodel import col, select

from bot.cases import deliver, jobs, transcript
from bot.channels.simulator import take
from bot.conversation.hours import parse
from bot.service import Hamroh, Inbound
from bot.store import Case, CaseEvent, CaseMessage, ConsoleEvent, Contact, OutboxMessage
from bot.store.db import transaction
from tests.conftest import Clock

HER = "+992927001001"
DANGER = "he beats me and I am afraid he will kill me"
SELF_HARM = "I want to kill myself"


async def say(hamroh: Hamroh, text: str = "", *, button: str | None = None, address: str = HER) -> list[str]:
    outcome = await hamroh.handle(Inbound("sms", address, text=text, button=button))
    return [str(m["text"]) for m in await take(hamroh, outcome.outbox_ids, hamroh.clock())]


async def cases(hamroh: Hamroh) -> list[Case]:
    async with transaction(hamroh.engine) as db:
        return list((await db.exec(select(Case).order_by(col(Case.id)))).all())


async def lines(hamroh: Hamroh, case: Case) -> list[tuple[str, str]]:
    assert case.id is not None
    async with transaction(hamroh.engine) as db:
        return [(line.author, line.text) for line in await transcript.lines(db, hamroh.vault, case.id)]


async def table(hamroh: Hamroh, model: Any) -> list[Any]:
    async with transaction(hamroh.engine) as db:
        return list((await db.exec(select(model))).all())


async def test_danger_as_her_very_first_message_is_answered_in_both_languages(small_hamroh: Hamroh) -> None:
    replies = await say(small_hamroh, DANGER)
    assert len(replies) == 2  # Tajik, then Russian: she has not chosen a language yet
    for reply in replies:
        assert reply.splitlines()[1] == "Emergency: 112"  # after a calm opening, 112 comes first
        assert "A counsellor will write to you here." in reply
        assert "Source" not in reply  # a danger screen offers no source
    (case,) = await cases(small_hamroh)
    assert (case.priority, case.status, case.category) == ("urgent", "waiting", "violence")
    assert await lines(small_hamroh, case) == [
        ("her", DANGER),
        ("bot", replies[0].removesuffix("\n0 Menu")),
        ("bot", replies[1].removesuffix("\n0 Menu")),
    ]
    kinds = [e.kind for e in await table(small_hamroh, ConsoleEvent)]
    assert kinds == ["case_opened", "case_message", "case_alert"]


async def test_danger_mid_menu_and_self_harm_gets_its_own_words(small_hamroh: Hamroh) -> None:
    await say(small_hamroh, "2")  # Russian
    await say(small_hamroh, "1")  # into the legal menu
    await say(small_hamroh, "1")  # child support
    (reply,) = await say(small_hamroh, SELF_HARM)
    assert reply.startswith("You matter.")
    (case,) = await cases(small_hamroh)
    assert (case.priority, case.category) == ("urgent", "suicide")
    assert json.loads(case.topics) == ["legal.alimony"]  # topic ids she looked at, never her words


async def test_while_waiting_her_words_go_to_the_case_with_one_acknowledgement(small_hamroh: Hamroh) -> None:
    await say(small_hamroh, "2")
    await say(small_hamroh, "3")  # settings
    assert (await say(small_hamroh, "4"))[0].startswith("A counsellor will write to you.")
    assert await say(small_hamroh, "My husband left for Russia two years ago") == [
        "A counsellor will write soon."
    ]
    assert await say(small_hamroh, "He does not send money") == []  # acknowledged once, not every time
    (case,) = await cases(small_hamroh)
    assert (case.priority, case.queue, case.status) == ("normal", "general", "waiting")
    her_lines = [text for author, text in await lines(small_hamroh, case) if author == "her"]
    assert her_lines == ["My husband left for Russia two years ago", "He does not send money"]


async def test_danger_during_a_case_raises_it_and_never_opens_a_second(small_hamroh: Hamroh) -> None:
    await say(small_hamroh, "2")
    await say(small_hamroh, "3")
    await say(small_hamroh, "4")
    (reply,) = await say(small_hamroh, DANGER)
    assert "Emergency: 112" in reply
    (case,) = await cases(small_hamroh)
    assert (case.priority, case.priority_rank, case.category) == ("urgent", 0, "violence")
    assert [e.kind for e in await table(small_hamroh, CaseEvent)] == ["opened", "raised"]


async def test_menu_leaves_the_case_and_closes_it(small_hamroh: Hamroh) -> None:
    await say(small_hamroh, "2")
    await say(small_hamroh, "3")
    await say(small_hamroh, "4")
    (reply,) = await say(small_hamroh, "0")
    assert reply.startswith("You left the chat.\nHow can I help?")
    (case,) = await cases(small_hamroh)
    assert (case.status, case.outcome) == ("closed", "left")
    assert (await say(small_hamroh, "hello"))[0].startswith("Sorry")  # the menus have her again


async def test_a_stop_word_during_a_case_asks_first(small_hamroh: Hamroh) -> None:
    await say(small_hamroh, "2")
    await say(small_hamroh, "3")
    await say(small_hamroh, "4")
    (ask,) = await say(small_hamroh, "STOP")
    assert ask.startswith("Stop all messages? The chat will end.")
    assert "1 No, go on" not in ask
    assert "2 No, go on" in ask
    assert await say(small_hamroh, "2") == ["Write your message.\n0 Menu"]
    (contact,) = await table(small_hamroh, Contact)
    assert not contact.opted_out
    (case,) = await cases(small_hamroh)
    assert case.status == "waiting"
    await say(small_hamroh, "stop")
    (done,) = await say(small_hamroh, "1")
    assert done.startswith("You will get no more messages.")
    (contact,) = await table(small_hamroh, Contact)
    assert contact.opted_out
    (case,) = await cases(small_hamroh)
    assert (case.status, case.outcome) == ("closed", "left")


async def test_danger_after_a_stop_word_still_gets_the_safety_screen(small_hamroh: Hamroh) -> None:
    await say(small_hamroh, "1")
    await say(small_hamroh, "STOP")
    assert await say(small_hamroh, "hello?") == []
    (reply,) = await say(small_hamroh, DANGER)  # her writing asks for the answer
    assert "Emergency: 112" in reply
    (case,) = await cases(small_hamroh)
    assert case.priority == "urgent"


async def test_erasing_during_a_case_leaves_a_closed_empty_case(small_hamroh: Hamroh) -> None:
    await say(small_hamroh, "2")
    await say(small_hamroh, DANGER)
    await say(small_hamroh, "delete my data")
    (done,) = await say(small_hamroh, "1")
    assert done.startswith("Everything about you has been deleted.")
    (case,) = await cases(small_hamroh)
    assert (case.contact_id, case.status, case.outcome) == (None, "closed", "erased")
    assert (case.lang, case.topics, case.note) == (None, "[]", None)
    assert await table(small_hamroh, CaseMessage) == []
    assert await table(small_hamroh, Contact) == []
    closed = [e for e in await table(small_hamroh, CaseEvent) if e.kind == "closed"]
    assert [e.outcome for e in closed] == ["erased"]


async def test_safe_hours_hold_staff_messages_until_she_writes(small_hamroh: Hamroh, clock: Clock) -> None:
    clock.now = clock.now.replace(hour=5)  # 10:00 in Dushanbe
    await say(small_hamroh, "2")
    await say(small_hamroh, "3")
    assert (await say(small_hamroh, "6"))[0].startswith("When is it safe to write?")
    assert (await say(small_hamroh, "с 18 до 21"))[0].startswith("We will write only then.")
    (contact,) = await table(small_hamroh, Contact)
    assert contact.safe_hours == "18:00-21:00"
    async with transaction(small_hamroh.engine) as db:
        row = deliver.to_her(small_hamroh.vault, contact=contact, text="Are you safe?", now=clock())
        db.add(row)
    (held,) = [r for r in await table(small_hamroh, OutboxMessage) if r.held]
    assert held.next_attempt_at == clock.now.replace(hour=13)  # 18:00 in Dushanbe
    await say(small_hamroh, "hello")  # her writing releases what waited
    (released,) = [r for r in await table(small_hamroh, OutboxMessage) if r.id == held.id]
    assert (released.held, released.next_attempt_at) == (False, clock())
    await say(small_hamroh, "0")
    await say(small_hamroh, "3")
    await say(small_hamroh, "6")
    await say(small_hamroh, "1")  # any time
    (contact,) = await table(small_hamroh, Contact)
    assert contact.safe_hours is None


async def test_outside_service_hours_she_is_told_when_counsellors_are_back(
    small_hamroh: Hamroh, clock: Clock
) -> None:
    small_hamroh.service_hours = parse("mon-fri 09-18")
    clock.now = clock.now.replace(hour=15)  # Saturday 20:00 in Dushanbe
    await say(small_hamroh, "2")
    await say(small_hamroh, "3")
    (away,) = await say(small_hamroh, "4")
    assert away.startswith("Counsellors are back at 09:00. In danger, call:\nEmergency: 112")
    (case,) = await cases(small_hamroh)
    assert case.status == "waiting"  # the case still opens; they will see it first thing


async def test_the_case_jobs_realert_requeue_close_and_purge(small_hamroh: Hamroh, clock: Clock) -> None:
    small_hamroh.staff_chat = "tg:-100200300"
    await say(small_hamroh, DANGER, address="+992927001002")
    timing = jobs.Timing(
        urgent_unclaimed=timedelta(minutes=5),
        active_silent=timedelta(minutes=30),
        waiting_abandoned=timedelta(hours=72),
        transcript_kept=timedelta(days=30),
    )

    async def run() -> jobs.Done | None:
        return await jobs.run_if_due(
            small_hamroh.engine,
            small_hamroh.vault,
            timing=timing,
            staff_chat=small_hamroh.staff_chat,
            every=timedelta(seconds=30),
            now=clock(),
        )

    assert await run() == jobs.Done()
    assert await run() is None  # ran a moment ago: another process would skip it too
    clock.advance(minutes=6)
    assert (await run()) == jobs.Done(realerted=1)
    (case,) = await cases(small_hamroh)
    assert case.supervisors_alerted
    staff = [r for r in await table(small_hamroh, OutboxMessage) if r.contact_id is None]
    texts = [json.loads(small_hamroh.vault.open(r.body))["text"] for r in staff]
    assert texts == [
        "Hamroh: new urgent case #1. Open the console.",
        "Hamroh: urgent case #1 is still waiting (6 min). Supervisors, please take it.",
    ]
    async with transaction(small_hamroh.engine) as db:
        row = await db.get(Case, case.id)
        assert row is not None
        row.status, row.claimed_at = "active", clock()
        db.add(row)
    clock.advance(minutes=31)
    assert (await run()) == jobs.Done(silent_alerted=1)
    clock.advance(minutes=30)
    assert (await run()) == jobs.Done(requeued=1)
    (case,) = await cases(small_hamroh)
    assert (case.status, case.counsellor_id) == ("waiting", None)
    clock.advance(hours=73)
    done = await run()
    assert done is not None
    assert done.abandoned == 1
    clock.advance(days=31)
    assert (await run()) == jobs.Done(purged=1)
    assert await cases(small_hamroh) == []
    assert [e.kind for e in await table(small_hamroh, CaseEvent)] == ["opened", "returned", "closed"]


async def test_real_content_danger_in_every_form_she_may_type(hamroh: Hamroh) -> None:
    """With the real content: Tajik with and without its letters, Latin, Russian; first messages all."""
    for number, (text, category) in enumerate(
        [
            ("мард маро мезанад", "violence"),
            ("mard maro mekushad", "violence"),
            ("муж бьет меня, боюсь убьет", "violence"),
            ("худамро мекушам", "suicide"),
        ]
    ):
        tajik, russian = await say(hamroh, text, address=f"+99292700200{number}")
        for reply, lang in ((tajik, "tg"), (russian, "ru")):
            node = hamroh.flows.node(f"safety.{category}")
            assert reply.startswith(hamroh.flows.text(lang, node.texts[0]))
            assert reply.splitlines()[1].endswith(": 112")
    urgent = [c for c in await cases(hamroh) if c.priority == "urgent"]
    assert len(urgent) == 4


async def test_real_content_near_misses_stay_in_the_menus(hamroh: Hamroh) -> None:
    await say(hamroh, "1")
    for text in ("I'm dying to see my son", "телефонам мурд", "он выбивает ковер"):
        (reply,) = await say(hamroh, text)
        assert "112" not in reply
    assert await cases(hamroh) == []


async def test_real_content_a_legal_question_goes_to_the_legal_queue(hamroh: Hamroh) -> None:
    await say(hamroh, "2")  # Russian
    await say(hamroh, "алимент")
    (menu,) = await say(hamroh, "консультант")
    assert menu.startswith(hamroh.flows.text("ru", hamroh.flows.node("counsellor.menu").texts[0]))
    (legal,) = await say(hamroh, "2")  # "A legal question"
    assert legal.startswith(hamroh.flows.text("ru", hamroh.flows.node("legal.lawyer").texts[0]))
    (case,) = await cases(hamroh)
    assert (case.queue, case.priority, case.category) == ("legal", "normal", "legal_question")
    assert "legal.alimony" in json.loads(case.topics)


async def test_a_photo_in_a_case_reaches_the_counsellor_as_a_reference(small_hamroh: Hamroh) -> None:
    await small_hamroh.handle(Inbound("telegram", "tg:555", text=DANGER))
    photo = {"kind": "photo", "file_id": "AgACAgIAAxk"}
    await small_hamroh.handle(Inbound("telegram", "tg:555", media=True, media_ref=photo))
    (case,) = await cases(small_hamroh)
    assert case.id is not None
    async with transaction(small_hamroh.engine) as db:
        her = [
            line for line in await transcript.lines(db, small_hamroh.vault, case.id) if line.author == "her"
        ]
        stored = (await db.exec(select(CaseMessage))).all()
    assert [(line.text, line.media) for line in her] == [(DANGER, None), ("", photo)]
    assert all(b"AgACAgIAAxk" not in row.body for row in stored)  # sealed, like her words


async def test_once_staff_closed_her_case_her_words_go_back_to_the_menus(small_hamroh: Hamroh) -> None:
    await say(small_hamroh, "2")
    await say(small_hamroh, "3")
    await say(small_hamroh, "4")
    (contact,) = await table(small_hamroh, Contact)
    assert contact.may_have_case
    async with transaction(small_hamroh.engine) as db:
        (case,) = (await db.exec(select(Case))).all()
        case.status, case.outcome = "closed", "resolved"  # as a counsellor closes it
        db.add(case)
    (reply,) = await say(small_hamroh, "hello")
    assert reply.startswith("Sorry")
    (contact,) = await table(small_hamroh, Contact)
    assert not contact.may_have_case  # the next turns skip the look-up


async def test_a_case_the_simulator_opens_is_the_consoles_only(small_hamroh: Hamroh) -> None:
    small_hamroh.staff_chat = "tg:-100200300"
    await small_hamroh.handle(Inbound("sms", "+992927001003", text=DANGER, simulated=True))
    (case,) = await cases(small_hamroh)
    assert case.priority == "urgent"  # the console hears of it, to try the console with the simulator
    staff = [r for r in await table(small_hamroh, OutboxMessage) if r.contact_id is None]
    assert staff == []  # the real staff chat hears of real women alone
