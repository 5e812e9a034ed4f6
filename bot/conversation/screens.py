"""What she sees of a node: its text in her language, the lines that follow it, and its options.

Pure functions of the flow set and the session; the engine decides which screen to show.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.conversation import listings
from bot.conversation.dates import date_in_words as date_in_words  # where other modules find it
from bot.conversation.flows import FlowSet, Node
from bot.conversation.model import (
    MENU_KEY,
    MORE_KEY,
    SOURCE_KEY,
    Channel,
    Course,
    Option,
    Reply,
    Session,
)

MAIN_MENU = "main.menu"
WELCOME, WELCOME_FREE = "main.welcome", "main.welcome_free"
PART_BREAK = "\n"  # between the parts of a topic joined into one Telegram message


def option_key(node: Node, option_id: str) -> str:
    """The stable key of an option: names the node and the option, never the label (Telegram: 64 bytes)."""
    return f"{node.ref}:{option_id}"


def more_key(node: Node, part: int) -> str:
    """The key of "More" on a multi-part node, naming the part it shows."""
    return f"{node.ref}:{MORE_KEY}:{part}"


def source_key(node: Node) -> str:
    """The key of the "Source" option of a fact node."""
    return f"{node.ref}:{SOURCE_KEY}"


def menu_label(flows: FlowSet, lang: str, node_ref: str | None) -> str | None:
    """The label of the way back to the menu, or None where she already is at the menu."""
    return None if node_ref == MAIN_MENU else flows.text(lang, flows.strings["menu"])


def last_part(node: Node) -> int:
    """The index of a node's last part: where its options are."""
    return len(node.texts) - 1


def part_shown(node: Node, part: int, channel: Channel) -> int:
    """The part a screen shows: on Telegram a topic is one message, so always the last (all joined)."""
    return last_part(node) if channel == "telegram" else min(max(part, 0), last_part(node))


def options(
    flows: FlowSet,
    node: Node,
    part: int,
    lang: str,
    channel: Channel = "sms",
    session: Session | None = None,
    courses: Sequence[Course] = (),
) -> tuple[Option, ...]:
    """The options of one screen: "More" until the last part, then the listed items (courses, topics),
    the node's own and "Source".

    Options meant for the other channel, or for another state of the course she looks at, are left out,
    so numbers count only what she sees.
    """
    if part_shown(node, part, channel) < last_part(node):
        return (Option(more_key(node, part + 1), flows.text(lang, flows.strings["more"])),)
    seen_as = session if session is not None else Session(lang=lang)
    listed = listings.options(flows, node, seen_as, courses, channel) if node.listing else ()
    own = tuple(
        Option(option_key(node, o.id), flows.text(lang, o.label))
        for o in node.options
        if o.shown_on(channel) and listings.condition_holds(o.when, seen_as, courses)
    )
    if node.fact and node.source and not node.danger:
        own = (*own, Option(source_key(node), flows.text(lang, flows.strings["source"])))
    return (*listed, *own)


def screen(
    flows: FlowSet,
    session: Session,
    node: Node,
    part: int,
    courses: Sequence[Course],
    channel: Channel = "sms",
) -> Reply:
    """The message for `part` of `node`, in her language: on SMS one part per message (with "More"),
    on Telegram the whole topic in one message with its buttons."""
    lang = session.lang or "tg"
    part = part_shown(node, part, channel)
    texts = node.texts if channel == "telegram" else node.texts[part : part + 1]
    lines = [PART_BREAK.join(flows.text(lang, text) for text in texts)]
    if part == last_part(node):
        lines.extend(service_lines(flows, node, lang))
        if node.listing:
            lines = listings.compose(flows, node, session, courses, channel, "\n".join(lines))
    shown = options(flows, node, part, lang, channel, session, courses)
    return Reply("\n".join(lines), shown, menu_label(flows, lang, node.ref))


def safety(flows: FlowSet, session: Session, node: Node, channel: Channel = "sms") -> Reply:
    """A danger screen: calm first words, 112 and the lines for that danger, then "a person will write"."""
    reply = screen(flows, session, node, 0, (), channel)
    will_write = flows.text(session.lang or "tg", flows.strings["urgent_will_write"])
    return Reply(f"{reply.text}\n{will_write}", reply.options, reply.menu)


def service_lines(flows: FlowSet, node: Node, lang: str) -> list[str]:
    """One line per directory entry: its name and number, or where to ask when no number is confirmed."""
    lines = []
    for service_id in node.services:
        service = flows.directory[service_id]
        reach = service.number if service.number else flows.text(lang, service.ask_at or "")
        lines.append(f"{flows.text(lang, service.name)}: {reach}")
    return lines


def welcome(flows: FlowSet) -> Reply:
    """The first message: the greeting in Tajik and in Russian, and the choice of language.

    It says Hamroh is free only where the deployment says so (SMS may cost her) and the content has
    the words for it.
    """
    free = flows.service_is_free and WELCOME_FREE in flows.nodes
    msgid = flows.node(WELCOME_FREE if free else WELCOME).texts[0]
    text = "\n".join(flows.text(lang, msgid) for lang in ("tg", "ru"))
    names = flows.words.languages
    return Reply(text, tuple(Option(f"lang:{lang}", names[lang]) for lang in ("tg", "ru") if lang in names))


def brief(
    flows: FlowSet,
    session: Session,
    msgid: str,
    node: Node | None,
    channel: Channel = "sms",
    courses: Sequence[Course] = (),
) -> Reply:
    """A short message (e.g. "Please write the hours like this") followed by the options of where she is."""
    lang = session.lang or "tg"
    node_options = options(flows, node, session.part, lang, channel, session, courses) if node else ()
    return Reply(flows.text(lang, msgid), node_options, menu_label(flows, lang, node.ref if node else None))


def not_understood(
    flows: FlowSet,
    session: Session,
    node: Node | None,
    channel: Channel = "sms",
    courses: Sequence[Course] = (),
) -> Reply:
    """What she can do when her message matched nothing, in one short message.

    On SMS: the numbers of the screen she sees ("Reply with a number: 1-3, 0"), without repeating the
    options (that would cost another SMS). On Telegram: "Tap a button", with the buttons.
    """
    lang = session.lang or "tg"
    if channel == "telegram" and "tap_button" in flows.strings:
        return brief(flows, session, flows.strings["tap_button"], node, channel, courses)
    shown = options(flows, node, session.part, lang, channel, session, courses) if node else ()
    numbers = [f"1-{len(shown)}" if len(shown) > 1 else "1"] if shown else []
    if node is None or menu_label(flows, lang, node.ref):
        numbers.append("0")
    text = flows.text(lang, flows.strings["not_understood"]).replace("{numbers}", ", ".join(numbers))
    return Reply(text)


def is_menu_key(key: str) -> bool:
    """Whether a button key means "the main menu"."""
    return key == MENU_KEY


def enrolment_outcome(
    flows: FlowSet, session: Session, outcome: str, course: Course | None, channel: Channel = "sms"
) -> Reply:
    """What the store decided when she asked for a place (enrolled, waiting, already_enrolled,
    already_waiting, closed) or gave one up (cancelled, not_enrolled), with the options of where she is."""
    lang = session.lang or "tg"
    title = course.title(lang) if course else ""
    lines = [flows.text(lang, flows.strings[f"enrol_{outcome}"]).format(course=title)]
    if outcome in ("enrolled", "waiting") and course is not None and course.starts is not None:
        day = date_in_words(course.starts, lang)
        lines.append(flows.text(lang, flows.strings["course_starts"]).format(date=day))
    node = flows.nodes.get(session.node or "")
    shown = options(flows, node, last_part(node), lang, channel, session) if node else ()
    return Reply("\n".join(lines), shown, menu_label(flows, lang, session.node))
