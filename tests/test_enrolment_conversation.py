"""Enrolment in a course, her side: the courses of her district, one course's details, consent that names
exactly what the partner gets, the store's answer (a place, the waiting list, closed), her courses and
giving a place up; in Tajik on SMS and in Russian on Telegram, through the service."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any, get_args

import pytest
from sqlmodel import select

from bot.announcements import enrolment
from bot.conversation.engine import step
from bot.conversation.flows import FlowSet
from bot.conversation.model import CancelRequested, Channel, Course, EnrolRequested, Input, Session
from bot.conversation.screens import date_in_words, enrolment_outcome
from bot.service import Hamroh
from bot.store import Case, CourseRow, Enrolment, OutboxMessage
from bot.store.db import transaction
from tests.conftest import Clock
from tests.test_conversations import Woman, number_of

PARTNER = "Ташкилоти Занон"
STARTS, ENDS = date(2027, 1, 11), date(2027, 2, 28)
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


async def add_course(hamroh: Hamroh, clock: Clock, **fields: Any) -> CourseRow:
    values: dict[str, Any] = {
        "title_tg": "Дӯзандагӣ",
        "title_ru": "Швейное дело",
        "title_en": "Sewing",
        "district": "bokhtar",
        "starts_on": STARTS,
        "ends_on": ENDS,
        "place": "Бохтар, кӯчаи Айнӣ 12",
        "partner": PARTNER,
        "capacity": 2,
        "partner_fields": "phone",
        "created_at": clock(),
    }
    values.update(fields)
    async with transaction(hamroh.engine) as db:
        row = CourseRow(**values)
        db.add(row)
        await db.flush()
        await db.refresh(row)
    hamroh.courses.forget()
    return row


async def enrolments(hamroh: Hamroh) -> list[tuple[str, dict[str, str] | None]]:
    """Every enrolment's status and what she agreed to share (unsealed), oldest first."""
    async with transaction(hamroh.engine) as db:
        rows = (await db.exec(select(Enrolment).order_by(Enrolment.id))).all()  # type: ignore[arg-type]
    return [(r.status, json.loads(hamroh.vault.open(r.details)) if r.details else None) for r in rows]


def s(her: Woman, key: str, **values: str) -> str:
    """A flow string in her language, filled in."""
    return her.t(her.hamroh.flows.strings[key]).format(**values)


async def press(her: Woman, label: str) -> str:
    """Telegram: press the button with this label as she reads it (a course's title)."""
    rows = her.received[-1]["reply_markup"]["inline_keyboard"]
    buttons = {b["text"]: b["callback_data"] for row in rows for b in row}
    assert label in buttons, f"{label!r} not among {list(buttons)}"
    return await her.send(button=buttons[label])


async def to_the_course(her: Woman, title: str) -> str:
    """From her first message to the course's screen: training, courses near me, her district, the course."""
    menu = await her.start()
    if her.channel == "telegram":
        await her.tap("Training and work")
        await her.tap("Courses near me")
        await her.send("Бохтар")
        return await press(her, title)
    training = await her.send(number_of(menu, her.t("Training and work")))
    await her.send(number_of(training, her.t("Courses near me")))
    listing = await her.send("Бохтар")
    return await her.send(number_of(listing, title))


async def test_in_tajik_by_sms_she_enrols_sharing_her_phone_then_gives_the_place_up(
    hamroh: Hamroh, clock: Clock
) -> None:
    await add_course(hamroh, clock)
    her = Woman(hamroh, "sms", "+992927200001", "tg")
    course = await to_the_course(her, "Дӯзандагӣ")
    assert course.startswith(f"{her.t('Course:')} Дӯзандагӣ")
    assert s(her, "course_starts", date=date_in_words(STARTS, "tg")) in course
    assert "11 январи 2027" in course
    assert s(her, "course_places_left", count="2") in course

    consent = await her.send(number_of(course, her.t("Enrol")))
    assert consent.startswith(s(her, "consent_phone", partner=PARTNER))  # her phone, and nothing else
    assert her.t("Do you agree?") in consent
    assert await enrolments(hamroh) == []  # nothing happens before she agrees

    done = await her.send(number_of(consent, her.t("Yes, I agree")))
    assert done.startswith(s(her, "enrol_enrolled", course="Дӯзандагӣ"))
    assert await enrolments(hamroh) == [("enrolled", {"phone": "+992927200001"})]

    mine = await her.send(number_of(done, her.t("My courses")))
    assert mine.startswith(her.t("Your courses:"))
    again = await her.send(number_of(mine, "Дӯзандагӣ"))
    assert her.t("You are enrolled.") in again
    assert her.t("Enrol") not in again
    question = await her.send(number_of(again, her.t("Give up my place")))
    assert question.startswith(her.t("Give up your place on this course?"))
    given_up = await her.send(number_of(question, her.t("Yes, give it up")))
    assert given_up.startswith(s(her, "enrol_cancelled", course="Дӯзандагӣ"))
    assert await enrolments(hamroh) == [("cancelled", None)]  # what she shared goes with it
    empty = await her.send(number_of(given_up, her.t("My courses")))
    assert empty.startswith(her.t("You are not on any course yet."))


async def test_in_russian_on_telegram_a_full_course_puts_her_on_its_waiting_list_with_name_and_phone(
    hamroh: Hamroh, clock: Clock
) -> None:
    await add_course(hamroh, clock, capacity=1, partner_fields="phone,name")
    first = Woman(hamroh, "telegram", "72001", "ru")
    await to_the_course(first, "Швейное дело")
    consent = await first.tap("Enrol")
    assert consent.startswith(s(first, "consent_phone_optional_name", partner=PARTNER))
    assert await first.tap("Yes, I agree") == first.t(
        "Write your name. You may add your phone number after it."
    )
    assert (await first.send("12345")).startswith(first.t("Please write your name in letters."))
    enrolled = await first.send("Нигора +992 90 123 45 67")
    assert enrolled.startswith(s(first, "enrol_enrolled", course="Швейное дело"))

    her = Woman(hamroh, "telegram", "72002", "ru")
    course = await to_the_course(her, "Швейное дело")
    assert her.t("No places left. You can join the waiting list.") in course
    assert "С 11 января 2027 по 28 февраля 2027." in course  # Telegram: all its details at once
    assert her.t("Enrol") not in her.buttons()
    await her.tap("Join the waiting list")
    await her.tap("Yes, I agree")
    waiting = await her.send("Зарина")  # a name, and no phone number: hers to choose
    assert waiting.startswith(s(her, "enrol_waiting", course="Швейное дело"))
    assert await enrolments(hamroh) == [
        ("enrolled", {"name": "Нигора", "phone": "+992901234567"}),
        ("waiting", {"name": "Зарина"}),
    ]


async def test_on_telegram_she_may_skip_the_phone_number(hamroh: Hamroh, clock: Clock) -> None:
    await add_course(hamroh, clock)
    her = Woman(hamroh, "telegram", "72003", "tg")
    await to_the_course(her, "Дӯзандагӣ")
    consent = await her.tap("Enrol")
    assert consent.startswith(s(her, "consent_phone_optional", partner=PARTNER))
    assert await her.tap("Yes, I agree") == her.t("Write your phone number, or choose Skip.")
    done = await her.tap("Skip")
    assert done.startswith(s(her, "enrol_enrolled", course="Дӯзандагӣ"))
    assert await enrolments(hamroh) == [("enrolled", {})]


async def test_a_course_closed_while_she_read_it_says_so_and_leaves_the_list(
    hamroh: Hamroh, clock: Clock
) -> None:
    row = await add_course(hamroh, clock)
    her = Woman(hamroh, "sms", "+992927200002", "ru")
    course = await to_the_course(her, "Швейное дело")
    consent = await her.send(number_of(course, her.t("Enrol")))
    async with transaction(hamroh.engine) as db:  # a coordinator takes it off; the cache has not seen it
        stored = await db.get(CourseRow, row.id)
        assert stored is not None
        stored.active = False
        db.add(stored)
    closed = await her.send(number_of(consent, her.t("Yes, I agree")))
    assert closed.startswith(s(her, "enrol_closed", course="Швейное дело"))
    assert await enrolments(hamroh) == []
    listing = await her.send(number_of(closed, her.t("Other courses")))
    assert "Швейное дело" not in listing
    assert her.t("No courses here yet. We will announce new ones to those who subscribe.") in listing


async def test_erasing_her_gives_her_place_to_the_next_woman_waiting(hamroh: Hamroh, clock: Clock) -> None:
    await add_course(hamroh, clock, capacity=1)
    leaving = Woman(hamroh, "sms", "+992927200005", "tg")
    course = await to_the_course(leaving, "Дӯзандагӣ")
    await leaving.send(
        number_of(await leaving.send(number_of(course, leaving.t("Enrol"))), leaving.t("Yes, I agree"))
    )
    waiting = Woman(hamroh, "sms", "+992927200006", "ru")
    course = await to_the_course(waiting, "Швейное дело")
    consent = await waiting.send(number_of(course, waiting.t("Join the waiting list")))
    await waiting.send(number_of(consent, waiting.t("Yes, I agree")))
    assert [status for status, _ in await enrolments(hamroh)] == ["enrolled", "waiting"]

    question = await leaving.send("маълумоти маро нест кунед")
    await leaving.send(number_of(question, leaving.t("Yes, delete")))
    assert [status for status, _ in await enrolments(hamroh)] == ["enrolled"]
    async with transaction(hamroh.engine) as db:
        (moved_up,) = (await db.exec(select(Enrolment))).all()
        told = (
            await db.exec(select(OutboxMessage).where(OutboxMessage.contact_id == moved_up.contact_id))
        ).all()
    freed = s(waiting, "place_freed", course="Швейное дело", date=date_in_words(STARTS, "ru"))
    assert any(json.loads(hamroh.vault.open(row.body))["text"] == freed for row in told)


async def test_danger_at_the_consent_screen_gets_112_and_a_person_in_the_same_turn(
    hamroh: Hamroh, clock: Clock
) -> None:
    await add_course(hamroh, clock)
    her = Woman(hamroh, "sms", "+992927200003", "ru")
    course = await to_the_course(her, "Швейное дело")
    await her.send(number_of(course, her.t("Enrol")))
    reply = await her.send("муж бьет меня")
    assert "112" in reply
    assert her.t("A counsellor will write to you here.") in reply
    async with transaction(hamroh.engine) as db:
        (case,) = (await db.exec(select(Case))).all()
    assert case.priority == "urgent"
    assert await enrolments(hamroh) == []


async def test_places_left_are_read_only_for_the_screens_that_show_them(
    hamroh: Hamroh, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_course(hamroh, clock)
    reads: list[list[int]] = []
    real = enrolment.places_left

    async def counted(db: Any, course_ids: Any) -> dict[int, int | None]:
        reads.append(list(course_ids))
        return await real(db, course_ids)

    monkeypatch.setattr(enrolment, "places_left", counted)
    her = Woman(hamroh, "sms", "+992927200004", "tg")
    menu = await her.start()
    training = await her.send(number_of(menu, her.t("Training and work")))
    await her.send(number_of(training, her.t("Courses near me")))
    listing = await her.send("Бохтар")
    assert reads == []  # the menus and the list of courses show no places
    course = await her.send(number_of(listing, "Дӯзандагӣ"))
    assert len(reads) == 1
    await her.send(number_of(course, her.t("Enrol")))  # read again: her number picked from those figures
    assert len(reads) == 2
    await her.send("0")
    assert len(reads) == 2


# --- the engine alone: consent and the enrolment event -----------------------------------------------------


def course_of(fields: tuple[str, ...]) -> Course:
    return Course(
        {"en": "Sewing", "ru": "Швейное дело", "tg": "Дӯзандагӣ"},
        "bokhtar",
        STARTS,
        id=7,
        partner=PARTNER,
        partner_fields=fields,  # type: ignore[arg-type]
        places_left=3,
    )


@pytest.mark.parametrize(
    ("fields", "channel", "key"),
    [
        (("phone",), "sms", "consent_phone"),
        (("phone",), "telegram", "consent_phone_optional"),
        (("name",), "sms", "consent_name"),
        (("phone", "name"), "sms", "consent_phone_name"),
        (("phone", "name"), "telegram", "consent_phone_optional_name"),
        ((), "sms", "consent_nothing"),
    ],
)
def test_consent_names_exactly_what_the_partner_gets(
    flows: FlowSet, fields: tuple[str, ...], channel: Channel, key: str
) -> None:
    session = Session(lang="en", node="training.course", district="bokhtar", course=7)
    turn = step(
        flows,
        session,
        Input(button="training.course:enrol", channel=channel),
        NOW,
        courses=[course_of(fields)],
    )
    (reply,) = turn.replies
    assert reply.text.splitlines() == [flows.strings[key].format(partner=PARTNER), "Do you agree?"]
    assert turn.events == ()


@pytest.mark.parametrize("lang", ["tg", "ru"])
def test_a_course_without_a_named_partner_opens_its_consent_with_a_capital(flows: FlowSet, lang: str) -> None:
    session = Session(lang=lang, node="training.course", district="bokhtar", course=7)
    course = replace(course_of(("phone",)), partner="")
    turn = step(flows, session, Input(button="training.course:enrol"), NOW, courses=[course])
    first = turn.replies[0].text
    assert first[0].isupper(), first
    assert flows.text(lang, flows.strings["the_partner"])[1:] in first


def test_on_sms_her_address_is_shared_and_her_name_asked_then_the_store_decides(flows: FlowSet) -> None:
    courses = [course_of(("phone", "name"))]
    session = Session(lang="en", node="training.consent", district="bokhtar", course=7)
    asked = step(flows, session, Input("1"), NOW, courses=courses)
    assert [r.text for r in asked.replies] == ["Write your name for the course."]
    assert asked.events == ()
    named = step(flows, asked.session, Input("Нигора"), NOW, courses=courses)
    assert named.events == (EnrolRequested(7, {"name": "Нигора"}, share_address=True),)
    assert named.replies == ()  # the service answers with what the store decided
    assert "Нигора" not in json.dumps(named.session.to_json(), ensure_ascii=False)  # never saved
    outcome = enrolment_outcome(flows, named.session, "waiting", courses[0], "sms")
    assert outcome.text.splitlines() == [
        "Sewing is full. You are on its waiting list. We will write when a place is free.",
        "It starts 11 January 2027.",
    ]
    assert [o.label for o in outcome.options] == ["My courses", "Other courses"]


def test_giving_up_a_place_is_an_event_for_the_store(flows: FlowSet) -> None:
    mine = replace(course_of(("phone",)), standing="enrolled")
    session = Session(lang="en", node="training.cancel", course=7)
    turn = step(flows, session, Input("1"), NOW, courses=[mine])
    assert turn.events == (CancelRequested(7),)
    assert turn.replies == ()


def test_a_long_list_of_courses_pages_and_numbers_pick_from_the_page_she_sees(flows: FlowSet) -> None:
    courses = [replace(course_of(("phone",)), id=n, titles={"en": f"Course {n}"}) for n in range(1, 6)]
    session = Session(lang="en", node="training.menu", district="bokhtar")
    first = step(flows, session, Input("1"), NOW, courses=courses)
    assert [o.label for o in first.replies[0].options] == [
        "Course 1",
        "Course 2",
        "Course 3",
        "More",
        "Another district",
    ]
    second = step(flows, first.session, Input("4"), NOW, courses=courses)
    assert [o.label for o in second.replies[0].options] == ["Course 4", "Course 5", "Another district"]
    chosen = step(flows, second.session, Input("1"), NOW, courses=courses)
    assert chosen.replies[0].text.startswith("Course: Course 4")
    assert chosen.session.course == 4
    back = step(flows, chosen.session, Input("3"), NOW, courses=courses)  # "Other courses": the first page
    assert [o.label for o in back.replies[0].options][:3] == ["Course 1", "Course 2", "Course 3"]


def test_news_of_courses_is_offered_beside_the_list_while_no_course_is_near(flows: FlowSet) -> None:
    session = Session(lang="en", node="training.menu", district="khujand")
    empty = step(flows, session, Input("1"), NOW, courses=[course_of(("phone",))])
    (reply,) = empty.replies
    assert "No courses here yet." in reply.text
    assert [o.label for o in reply.options] == ["Another district", "News of courses"]


@pytest.mark.parametrize("lang", ["tg", "ru"])
@pytest.mark.parametrize("outcome", [*get_args(enrolment.Outcome), "cancelled", "not_enrolled"])
def test_every_answer_of_the_store_has_words_in_her_language(flows: FlowSet, lang: str, outcome: str) -> None:
    course = course_of(("phone",))
    session = Session(lang=lang, node="training.enrolment", course=7)
    reply = enrolment_outcome(flows, session, outcome, course, "sms")
    first = reply.text.splitlines()[0]
    assert course.title(lang) in first
    assert first != flows.strings[f"enrol_{outcome}"].format(course=course.title(lang))  # translated
    assert reply.menu is not None
