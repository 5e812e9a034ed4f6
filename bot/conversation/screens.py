"""What she sees of a node: its text in her language, the lines that follow it, and its options.

Pure functions of the flow set and the session; the engine decides which screen to show.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.conversation.flows import FlowSet, Node
from bot.conversation.model import MENU_KEY, MORE_KEY, SOURCE_KEY, Course, Option, Reply, Session

MAIN_MENU = "main.menu"


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


def options(flows: FlowSet, node: Node, part: int, lang: str) -> tuple[Option, ...]:
    """The options of one screen: "More" until the last part, then the node's own and "Source"."""
    if part < len(node.texts) - 1:
        return (Option(more_key(node, part + 1), flows.text(lang, flows.strings["more"])),)
    own = tuple(Option(option_key(node, o.id), flows.text(lang, o.label)) for o in node.options)
    if node.fact and node.source and not node.danger:
        own = (*own, Option(source_key(node), flows.text(lang, flows.strings["source"])))
    return own


def screen(flows: FlowSet, session: Session, node: Node, part: int, courses: Sequence[Course]) -> Reply:
    """The message for `part` of `node`, in her language."""
    lang = session.lang or "tg"
    part = min(max(part, 0), len(node.texts) - 1)
    lines = [flows.text(lang, node.texts[part])]
    if part == len(node.texts) - 1:
        lines.extend(service_lines(flows, node, lang))
        if node.listing == "courses":
            lines.extend(course_lines(flows, session, courses))
    return Reply("\n".join(lines), options(flows, node, part, lang), menu_label(flows, lang, node.ref))


def safety(flows: FlowSet, session: Session, node: Node) -> Reply:
    """A danger screen: calm first words, 112 and the lines for that danger, then "a person will write"."""
    reply = screen(flows, session, node, 0, ())
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


def course_lines(flows: FlowSet, session: Session, courses: Sequence[Course]) -> list[str]:
    """The courses open to her district, or the words that say there are none yet."""
    lang = session.lang or "tg"
    near = [c for c in courses if c.district is None or c.district == session.district]
    if not near:
        return [flows.text(lang, flows.strings["no_courses"])]
    lines = [flows.text(lang, flows.strings["courses_all"])]
    for course in near:
        title = course.titles.get(lang) or next(iter(course.titles.values()), "")
        when = f" ({course.starts.isoformat()})" if course.starts else ""
        lines.append(f"- {title}{when}")
    return lines


def welcome(flows: FlowSet) -> Reply:
    """The first message: the greeting in Tajik and in Russian, and the choice of language."""
    msgid = flows.node("main.welcome").texts[0]
    text = "\n".join(flows.text(lang, msgid) for lang in ("tg", "ru"))
    names = flows.words.languages
    return Reply(text, tuple(Option(f"lang:{lang}", names[lang]) for lang in ("tg", "ru") if lang in names))


def brief(flows: FlowSet, session: Session, msgid: str, node: Node | None) -> Reply:
    """A short message (e.g. "I did not understand") followed by the options of where she is."""
    lang = session.lang or "tg"
    node_options = options(flows, node, session.part, lang) if node else ()
    return Reply(flows.text(lang, msgid), node_options, menu_label(flows, lang, node.ref if node else None))


def is_menu_key(key: str) -> bool:
    """Whether a button key means "the main menu"."""
    return key == MENU_KEY
