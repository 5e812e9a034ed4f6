"""Screens filled from the data of the moment: courses near her, one course, her courses, what she shares
with a training partner, and her news.

Pure functions of the flow set, her session and the courses the service read; the texts are flow
strings. A listed course or topic is an option with a key of its own ("training.courses:course:12",
"main.news_topics:topic:health"), so a number on SMS and a button on Telegram both choose it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.conversation.dates import date_in_words
from bot.conversation.flows import FlowSet, Node
from bot.conversation.model import NEWS_TOPICS, Channel, Course, Option, Session

COURSE_ITEM = "course"
TOPIC_ITEM = "topic"
PAGE_ITEM = "page"
TITLE_CHARS = 24  # of a course's title on an SMS option line: a long title must not cost another SMS
PER_PAGE = {"sms": 3, "telegram": 8}  # courses on one screen; "More" shows the next ones
NAME_CHARS = 60
PHONE = re.compile(r"\+?\d[\d \-()]{7,}\d")
TJ_PREFIX = "992"  # a phone written without its country code is a Tajik one


def item_key(node: Node, kind: str, value: str | int) -> str:
    """The key of a listed item: the node, the kind of item and which one."""
    return f"{node.ref}:{kind}:{value}"


def item(option_id: str) -> tuple[str, str] | None:
    """The kind and value of a listed item's option id ("course:12" -> ("course", "12")), else None."""
    kind, _, value = option_id.partition(":")
    if kind in (COURSE_ITEM, TOPIC_ITEM, PAGE_ITEM) and value:
        return kind, value
    return None


def near(session: Session, courses: Sequence[Course]) -> list[Course]:
    """The courses open to her district (a course without a district is open to all)."""
    return [c for c in courses if c.district is None or c.district == session.district]


def chosen(session: Session, courses: Sequence[Course]) -> Course | None:
    """The course she is looking at, if it is still listed."""
    return next((c for c in courses if c.id == session.course), None) if session.course else None


def node_listing(flows: FlowSet, kind: str) -> Node | None:
    """The node that shows a kind of listing ("course": a course's details), if the content has one."""
    return next((n for n in flows.nodes.values() if n.listing == kind), None)


def condition_holds(when: str | None, session: Session, courses: Sequence[Course]) -> bool:
    """Whether an option with this `when` is shown: for the course she looks at, or ("none") while no
    course is near her."""
    if when is None:
        return True
    if when == "none":
        return not near(session, courses)
    course = chosen(session, courses)
    if course is None:
        return False
    mine = course.standing is not None
    return {"mine": mine, "open": not mine and not course.full, "full": not mine and course.full}.get(
        when, False
    )


def short(title: str) -> str:
    """A title cut to fit an SMS option line."""
    return title if len(title) <= TITLE_CHARS else title[: TITLE_CHARS - 1].rstrip() + "…"


def options(
    flows: FlowSet, node: Node, session: Session, courses: Sequence[Course], channel: Channel
) -> tuple[Option, ...]:
    """The listed items of a screen, before its own options."""
    lang = session.lang or "tg"
    match node.listing:
        case "courses":
            listed = near(session, courses)
            per = PER_PAGE[channel]
            page = session.page if session.page * per < len(listed) else 0
            shown = tuple(
                Option(item_key(node, COURSE_ITEM, c.id), short(c.title(lang)))
                for c in listed[page * per : (page + 1) * per]
            )
            if (page + 1) * per < len(listed):
                shown = (*shown, Option(item_key(node, PAGE_ITEM, page + 1), _s(flows, lang, "more")))
            return shown
        case "mine":
            waiting = flows.text(lang, flows.strings["mine_waiting"])
            return tuple(
                Option(
                    item_key(node, COURSE_ITEM, c.id),
                    waiting.format(course=short(c.title(lang)))
                    if c.standing == "waiting"
                    else short(c.title(lang)),
                )
                for c in courses
                if c.standing is not None
            )
        case "news_topics":
            return tuple(
                Option(
                    item_key(node, TOPIC_ITEM, topic), topic_state(flows, lang, topic, topic in session.news)
                )
                for topic in NEWS_TOPICS
            )
    return ()


def topic_state(flows: FlowSet, lang: str, topic: str, on: bool) -> str:
    """A topic's name and whether she gets its news ("Health: yes")."""
    name = flows.text(lang, flows.strings[f"news_{topic}"])
    return flows.text(lang, flows.strings["topic_on" if on else "topic_off"]).format(topic=name)


def compose(
    flows: FlowSet, node: Node, session: Session, courses: Sequence[Course], channel: Channel, text: str
) -> list[str]:
    """The lines of a listing screen, given the node's own text."""
    lang = session.lang or "tg"
    course = chosen(session, courses)
    match node.listing:
        case "courses":
            return [text] if near(session, courses) else [text, _s(flows, lang, "no_courses")]
        case "course" | "course_about" | "consent" if course is None:
            return [_s(flows, lang, "course_gone")]
        case "course" if course is not None:
            return [f"{text} {course.title(lang)}", *details(flows, lang, course, channel)]
        case "course_about" if course is not None:
            return [text, *about(flows, lang, course), course.description(lang)]
        case "consent" if course is not None:
            return [consent(flows, lang, course, channel), text]
        case "mine":
            return [text] if any(c.standing for c in courses) else [_s(flows, lang, "mine_none")]
        case "news_status":
            return [text, *news_status(flows, session)]
    return [text]


def details(flows: FlowSet, lang: str, course: Course, channel: Channel) -> list[str]:
    """A course's first day, places left and her standing; on Telegram all of `about` and its description
    too (an SMS shows those on a screen of their own)."""
    lines = []
    if channel == "telegram":
        lines.extend(about(flows, lang, course))
        if course.description(lang):
            lines.append(course.description(lang))
    elif course.starts:
        lines.append(_s(flows, lang, "course_starts").format(date=date_in_words(course.starts, lang)))
    if course.standing == "enrolled":
        lines.append(_s(flows, lang, "course_you_enrolled"))
    elif course.standing == "waiting":
        lines.append(_s(flows, lang, "course_you_waiting"))
    elif course.full:
        lines.append(_s(flows, lang, "course_full"))
    elif course.places_left is not None:
        lines.append(_s(flows, lang, "course_places_left").format(count=course.places_left))
    return lines


def about(flows: FlowSet, lang: str, course: Course) -> list[str]:
    """A course's dates (in words), place and partner."""
    lines = []
    if course.starts and course.ends:
        start, end = date_in_words(course.starts, lang), date_in_words(course.ends, lang)
        lines.append(_s(flows, lang, "course_dates").format(start=start, end=end))
    elif course.starts:
        lines.append(_s(flows, lang, "course_starts").format(date=date_in_words(course.starts, lang)))
    if course.place:
        lines.append(_s(flows, lang, "course_place").format(place=course.place))
    if course.partner:
        lines.append(_s(flows, lang, "course_partner").format(partner=course.partner))
    return lines


def consent(flows: FlowSet, lang: str, course: Course, channel: Channel) -> str:
    """What the partner receives, named exactly: her phone (on SMS her address; on Telegram the number
    she writes, if any) and her name only when the course asks for it."""
    parts = []
    if "phone" in course.partner_fields:
        parts.append("phone" if channel == "sms" else "phone_optional")
    if "name" in course.partner_fields:
        parts.append("name")
    key = "consent_" + ("_".join(parts) or "nothing")
    partner = course.partner or _s(flows, lang, "the_partner")
    sentence = _s(flows, lang, key).format(partner=partner)
    return sentence[:1].upper() + sentence[1:]  # "the organiser of the course" may open the sentence


def to_ask(course: Course, channel: Channel) -> str | None:
    """The question she answers before enrolling (a `save` kind), or None when nothing is to be typed."""
    name = "name" in course.partner_fields
    phone = "phone" in course.partner_fields and channel == "telegram"  # on SMS her phone is her address
    if name and phone:
        return "enrol_name_phone"
    if name:
        return "enrol_name"
    return "enrol_phone" if phone else None


def news_status(flows: FlowSet, session: Session) -> list[str]:
    """What she gets news of, and for which district, in her language."""
    lang = session.lang or "tg"
    if not session.news:
        return [_s(flows, lang, "news_none")]
    names = ", ".join(flows.text(lang, flows.strings[f"news_{topic}"]) for topic in session.news)
    topics = (
        _s(flows, lang, "news_all")
        if session.news == NEWS_TOPICS
        else _s(flows, lang, "news_topics_are").format(topics=names)
    )
    district = flows.districts.get(session.district or "")
    where = (
        _s(flows, lang, "news_district_is").format(district=district.names.get(lang, district.id))
        if district
        else _s(flows, lang, "news_everywhere")
    )
    return [topics, where]


def phone_in(text: str) -> str | None:
    """A phone number she wrote, as E.164 ("+992901234567"); a number without a country code is Tajik."""
    found = PHONE.search(text)
    if found is None:
        return None
    digits = re.sub(r"\D", "", found.group())
    if len(digits) == 9:
        digits = TJ_PREFIX + digits
    return f"+{digits}" if 10 <= len(digits) <= 15 else None


def name_in(text: str) -> str | None:
    """A name she wrote: letters (and spaces, hyphens, apostrophes), at most NAME_CHARS; else None."""
    name = " ".join(PHONE.sub(" ", text).split()).strip(" ,.;")
    if not name or len(name) > NAME_CHARS or any(ch.isdigit() for ch in name):
        return None
    return name if any(ch.isalpha() for ch in name) else None


def _s(flows: FlowSet, lang: str, key: str) -> str:
    return flows.text(lang, flows.strings[key])
