"""What a node does when she reaches it (`do:` in the flow files): one case per kind of action.

Each action changes the session of the turn being built and says what happened as events; the service
applies them. Pure, like the engine that calls it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bot.conversation import listings
from bot.conversation.flows import FlowSet, Node
from bot.conversation.model import (
    NEWS_TOPICS,
    SCRIPTS,
    CancelRequested,
    CaseLeft,
    ClearChatRequested,
    EnrolRequested,
    EraseRequested,
    EscalationRequested,
    LanguageChanged,
    NewsChanged,
    OptedOut,
    SafeHoursSet,
    ScriptChanged,
    Session,
)
from bot.conversation.state import Acc

MAIN_MENU = "main.menu"
# Where she was when she asked for a person decides the queue: rights -> legal, feelings -> support.
QUEUE_OF_FLOW = {"legal": "legal", "helplines": "support", "stories": "support", "safety": "support"}


@dataclass(frozen=True)
class Then:
    """What follows an action: the node's own screen (the default), another node, or no screen at all
    because the service answers with what the store decided (enrolling, cancelling)."""

    go: str | None = None
    quiet: bool = False


SHOW = Then()
QUIET = Then(quiet=True)


def act(acc: Acc, node: Node) -> Then:
    """Run the action of `node`."""
    action = node.action
    assert action is not None
    session = acc.session
    match action.kind:
        case "escalate":
            queue = action.queue or queue_of(acc.flows, session)
            acc.events.append(EscalationRequested(queue, action.reason or "asked", action.priority))
        case "safe_any_time":
            acc.events.append(SafeHoursSet(None))
        case "opt_out":
            acc.session = replace(session, opted_out=True)
            acc.events.append(OptedOut())
            if acc.case is not None:
                acc.events.append(CaseLeft())
        case "subscribe":
            # Without topics: every topic. With topics (the training menu's "News of courses"): those too.
            set_news(acc, (*session.news, *(action.topics or NEWS_TOPICS)))
        case "unsubscribe":
            set_news(acc, ())
        case "set_language" if action.lang:
            acc.session = replace(session, lang=action.lang)
            acc.events.append(LanguageChanged(action.lang))
        case "set_script" if action.script in SCRIPTS:
            acc.session = replace(session, script=action.script)
            acc.events.append(ScriptChanged(acc.session.script))
        case "erase":
            # Everything about her goes; the reply is still written in the language she used.
            acc.session = Session(lang=session.lang, node=node.ref, last_active=session.last_active)
            acc.events.append(EraseRequested())
        case "clear_chat":
            acc.events.append(ClearChatRequested())
        case "enrol":
            return _enrol(acc, node)
        case "cancel_enrolment":
            course = listings.chosen(session, acc.courses)
            if course is None:
                return Then(go=_course_node(acc.flows))
            acc.events.append(CancelRequested(course.id))
            return QUIET
    return SHOW


def set_news(acc: Acc, topics: tuple[str, ...]) -> None:
    """Her news topics are now exactly these: the session says so, and an event tells the service."""
    acc.session = acc.session.with_news(topics)
    acc.events.append(NewsChanged(acc.session.news))


def _enrol(acc: Acc, node: Node) -> Then:
    """She agreed to share what the consent screen named: ask what she must type first (her name, on
    Telegram a phone number), then ask the store for a place."""
    course = listings.chosen(acc.session, acc.courses)
    if course is None:
        return Then(go=_course_node(acc.flows))
    question = listings.to_ask(course, acc.channel)
    if question is not None and not acc.typed:
        asks = [n for n in acc.flows.nodes.values() if n.ask and n.save == question]
        ask = next((n for n in asks if n.flow == node.flow), asks[0] if asks else None)
        if ask is not None:
            return Then(go=ask.ref)
    details: dict[str, str] = {k: v for k, v in acc.typed.items() if v and k in course.partner_fields}
    share_address = "phone" in course.partner_fields and acc.channel == "sms"
    acc.events.append(EnrolRequested(course.id, details, share_address))
    return QUIET


def _course_node(flows: FlowSet) -> str:
    """Where a course that is no longer listed is said to be gone (the menu when no node shows courses)."""
    found = listings.node_listing(flows, "course")
    return found.ref if found else MAIN_MENU


def queue_of(flows: FlowSet, session: Session) -> str:
    """The queue of where she was before she asked for a person (legal, support, or general)."""
    for ref in reversed((*session.history, session.node or "")):
        flow = ref.split(".", 1)[0]
        if flow in QUEUE_OF_FLOW:
            return QUEUE_OF_FLOW[flow]
        if flow not in ("counsellor", "main"):
            break
    return "general"
