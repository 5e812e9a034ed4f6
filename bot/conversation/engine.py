"""The pure turn function: (flows, session, input, now) -> Turn(session, replies, events).

No database, no network, no clock, no randomness: everything it decides is in the Turn it returns.
Whatever she sends, the engine answers with something useful in her language and never raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from bot.conversation import actions, answers, listings, screens, triage, unchosen
from bot.conversation.flows import AWAY_NODE, SAFETY_FLOW, FlowSet, Node
from bot.conversation.model import (
    LANGUAGES,
    MORE_KEY,
    OFFERED_LANGUAGES,
    SOURCE_KEY,
    CaseLeft,
    Counsellors,
    Course,
    DangerDetected,
    Input,
    LanguageChanged,
    OpenCase,
    OptedIn,
    OptedOut,
    Option,
    Reply,
    Session,
    TopicViewed,
    Turn,
    WroteToCase,
)
from bot.conversation.state import ALWAYS_OPEN, Acc
from bot.conversation.text import best_keyword, clean, fold_message

MAX_INPUT = 1000  # characters of her message looked at; nothing longer is needed to route a turn
MENU = screens.MAIN_MENU
ERASE = "main.erase"
HELP = "main.help"
CLEAR_CHAT = "main.clear_chat"  # Telegram can delete its messages; an SMS on her phone only she can
DELETE_SMS = "main.delete_sms"  # on SMS, where "clear this chat" leads instead: how to delete them herself
NEWS = "main.announcements"  # where the words for news lead: subscribing to announcements
CASE_STOP = "main.case_stop"  # a stop word during a case asks first: "enough!" is not always a wish to go
SKIP = "skip"  # the option of a question about a partner's details that answers it with nothing


def step(
    flows: FlowSet,
    session: Session,
    inp: Input,
    now: datetime,
    *,
    courses: Sequence[Course] = (),
    case: OpenCase | None = None,
    counsellors: Counsellors = ALWAYS_OPEN,
) -> Turn:
    """Run one turn of the conversation.

    `case` is her open case with a counsellor, if any: her words then go to it, not to the menus.
    `counsellors` says whether they answer now. A message that signals danger is answered with the
    safety screen whatever the state of the conversation, first message and stop word included.
    """
    if session.last_active and session.node and now - session.last_active > flows.idle_reset:
        # She came back after a long time: start again at the menu, keeping her language.
        session = replace(session, node=MENU, part=0, history=())
    if session.node is not None and session.node not in flows.nodes:
        session = replace(session, node=MENU, part=0, history=())  # content changed under her
    acc = Acc(flows, replace(session, last_active=now), courses, [], [], case, counsellors, inp.channel)
    text = clean(inp.text[: MAX_INPUT * 2])[:MAX_INPUT]
    folded = fold_message(text)
    verdict = triage.classify_folded(flows.triage, folded) if inp.button is None and folded else None
    if verdict is not None:
        _danger(acc, verdict, text, inp.media)
    elif case is not None and _in_case(acc, inp, text, folded):
        pass
    else:
        _route(acc, inp, text, folded)
    return acc.turn()


def _danger(acc: Acc, verdict: triage.Verdict, text: str, media: bool) -> None:
    """The safety screen in her language (in both before she chose one), and an urgent case."""
    if acc.session.opted_out:  # her writing asks for the answer, even after a stop word
        acc.session = replace(acc.session, opted_out=False)
        acc.events.append(OptedIn())
    acc.events.append(DangerDetected(verdict.category, verdict.rule))
    acc.events.append(WroteToCase(text, media))
    node = acc.flows.node(f"{SAFETY_FLOW}.{verdict.category}")
    if node.topic:
        acc.events.append(TopicViewed(node.topic))
    if acc.session.lang is None:
        for lang in OFFERED_LANGUAGES:
            acc.replies.append(screens.safety(acc.flows, replace(acc.session, lang=lang), node, acc.channel))
        return
    acc.session = acc.session.at(node.ref)
    acc.replies.append(screens.safety(acc.flows, acc.session, node, acc.channel))


def _in_case(acc: Acc, inp: Input, text: str, folded: str) -> bool:
    """Her open case takes her words; True when this turn is done. Menu words leave the case, a stop
    word asks first, erasing still works, and a number still picks an option of the screen she sees."""
    words, node = acc.flows.words, acc.node
    if acc.session.opted_out:
        return False
    if (inp.button is not None and screens.is_menu_key(inp.button)) or folded in words.menu:
        acc.events.append(CaseLeft())
        _enter(acc, MENU)
        left = acc.flows.text(acc.lang, acc.flows.strings["case_left"])
        acc.replies[-1] = replace(acc.replies[-1], text=f"{left}\n{acc.replies[-1].text}")
        return True
    if folded in words.stop:
        _enter(acc, CASE_STOP)
        return True
    if inp.button is not None or asks_to_erase(acc.flows, folded) or folded in words.language_names:
        return False  # a button she pressed, "delete my data" or a language's name: the menus handle it
    assert acc.case is not None
    # A number picks from the screen she sees, except in a live chat, where "1" may answer the counsellor;
    # there only the questions she has just been asked (stop? delete?) take numbers.
    picks = acc.case.status == "waiting" or (node is not None and node.ref in (CASE_STOP, ERASE))
    if picks and folded.isdigit() and node is not None and 1 <= int(folded) <= len(_shown(acc, node)):
        return False
    if node is not None and node.ask and _answer(acc, node, text, folded):
        return True
    acc.events.append(WroteToCase(text, inp.media))
    if acc.case.status == "waiting" and not acc.case.acknowledged:
        acc.replies.append(Reply(acc.flows.text(acc.lang, acc.flows.strings["case_waiting"])))
    return True


def _route(acc: Acc, inp: Input, text: str, folded: str) -> None:
    words = acc.flows.words
    if acc.session.opted_out:
        if folded in words.start:
            acc.session = replace(acc.session, opted_out=False)
            acc.events.append(OptedIn())
            _enter(acc, "main.resumed")
        return  # nothing more is sent to her after a stop word but the confirmation
    if folded in words.stop:
        acc.session = replace(acc.session, opted_out=True)
        acc.events.append(OptedOut())
        _enter(acc, "main.stopped")
        return
    if acc.session.lang is None:
        if folded in words.help:
            unchosen.help_first(acc)
        elif unchosen.erase_first(acc, inp, folded):
            return
        _first_contact(acc, inp, folded)
        return
    if inp.button is not None:
        _press(acc, inp.button)
        return
    if inp.media and not text:
        # A short answer and the way to the menu: with the node's options it could cost a third SMS.
        acc.replies.append(
            screens.brief(acc.flows, acc.session, acc.flows.strings["not_text"], None, acc.channel)
        )
        return
    if _global_word(acc, folded):
        return
    node = acc.node
    if node is not None and node.ask and node.save in answers.PARTNER_SAVES:
        # Her name or a phone number (all digits, and no option's number): this question takes her words.
        if not _answer(acc, node, text, folded) and node.invalid:
            invalid = screens.brief(acc.flows, acc.session, node.invalid, node, acc.channel, acc.courses)
            acc.replies.append(invalid)
        return
    if folded.isdigit() and node is not None:
        _pick(acc, node, int(folded))
        return
    if node is not None and node.ask and _answer(acc, node, text, folded):
        return
    target = _keyword(acc.flows, folded)
    if target is not None:
        _enter(acc, target)
        return
    if node is not None and node.ask and node.invalid:
        acc.replies.append(
            screens.brief(acc.flows, acc.session, node.invalid, node, acc.channel, acc.courses)
        )
    else:
        acc.replies.append(screens.not_understood(acc.flows, acc.session, node, acc.channel, acc.courses))


def _first_contact(acc: Acc, inp: Input, folded: str) -> None:
    names = acc.flows.words.language_names
    chosen: str | None = None
    if inp.button and inp.button.startswith("lang:"):
        chosen = inp.button.removeprefix("lang:")
    elif folded.isdigit() and 1 <= int(folded) <= len(OFFERED_LANGUAGES):
        chosen = OFFERED_LANGUAGES[int(folded) - 1]
    elif folded in names:
        chosen = names[folded]
    if chosen not in LANGUAGES:
        acc.session = replace(acc.session, node=None, part=0, history=())
        acc.replies.append(screens.welcome(acc.flows))
        return
    assert chosen is not None
    acc.session = replace(acc.session, lang=chosen)
    acc.events.append(LanguageChanged(chosen))
    _enter(acc, MENU)


def _global_word(acc: Acc, folded: str) -> bool:
    words = acc.flows.words
    if folded in words.menu or folded in words.start:
        _enter(acc, MENU)
    elif folded in words.back:
        history = acc.session.history
        previous = next((ref for ref in reversed(history) if ref in acc.flows.nodes), MENU)
        acc.session = replace(acc.session, history=history[: max(len(history) - 1, 0)])
        _enter(acc, previous, remember=False)
    elif folded in words.language:
        _enter(acc, "main.language")
    elif folded in words.language_names:
        _switch_language(acc, words.language_names[folded])
    elif folded in words.help:
        _enter(acc, HELP)
    elif asks_to_erase(acc.flows, folded):
        _enter(acc, ERASE)
    elif folded in words.clear and CLEAR_CHAT in acc.flows.nodes:
        _enter(acc, CLEAR_CHAT)
    elif folded in words.news and NEWS in acc.flows.nodes:
        _enter(acc, NEWS)  # only the word alone: "аз шавҳарам хабар нест" is about a missing husband
    else:
        return False
    return True


def asks_to_erase(flows: FlowSet, folded: str) -> bool:
    """Whether her message asks to delete her data (then the bot asks before deleting anything)."""
    return unchosen.asks_to_erase(flows.words, folded)


def _switch_language(acc: Acc, lang: str) -> None:
    """She named a language: the menu in that language, wherever she was."""
    if lang != acc.session.lang:
        acc.session = replace(acc.session, lang=lang)
        acc.events.append(LanguageChanged(lang))
    _enter(acc, MENU)


def _press(acc: Acc, key: str) -> None:
    """A Telegram button: keys name a node and an option; one that no longer exists leads to the menu."""
    if screens.is_menu_key(key):
        _enter(acc, MENU)
        return
    if key.startswith("lang:") and key.removeprefix("lang:") in LANGUAGES:
        _first_contact(acc, Input(button=key), "")
        return
    ref, _, option_id = key.partition(":")
    node = acc.flows.nodes.get(ref)
    if node is None:
        _enter(acc, MENU)
        return
    if option_id.startswith(f"{MORE_KEY}:"):
        part = option_id.removeprefix(f"{MORE_KEY}:")
        if part.isdigit() and int(part) < len(node.texts):
            _show(acc, node, int(part))
            return
    elif option_id == SOURCE_KEY and node.source:
        _source(acc, node)
        return
    listed = listings.item(option_id)
    if listed is not None:
        _choose(acc, node, *listed)
        return
    option = node.option(option_id)
    if option is not None and option.id == SKIP and node.ask and node.save in answers.PARTNER_SAVES:
        acc.typed["phone"] = ""  # she shares no phone number: the question is answered with nothing
    _enter(acc, option.target if option else MENU)


def _choose(acc: Acc, node: Node, kind: str, value: str) -> None:
    """A listed item: a course opens its details, "More" the next page of courses; a news topic is turned
    on or off, and shown again."""
    if kind == listings.COURSE_ITEM and value.isdigit():
        acc.session = replace(acc.session, course=int(value))
        target = listings.node_listing(acc.flows, "course")
        _enter(acc, target.ref if target else MENU)
    elif kind == listings.PAGE_ITEM and value.isdigit():
        acc.session = replace(acc.session, page=int(value))
        _show(acc, node, 0)
    elif kind == listings.TOPIC_ITEM and value in acc.session.news:
        actions.set_news(acc, tuple(t for t in acc.session.news if t != value))
        _enter(acc, node.ref, remember=False)
    elif kind == listings.TOPIC_ITEM:
        actions.set_news(acc, (*acc.session.news, value))
        _enter(acc, node.ref, remember=False)
    else:
        _enter(acc, MENU)


def _pick(acc: Acc, node: Node, number: int) -> None:
    """A number typed in answer to a numbered list."""
    shown = _shown(acc, node)
    if 1 <= number <= len(shown):
        _press(acc, shown[number - 1].key)
    elif node.ask and node.invalid:  # a question that wants words: say what it wants, not "a number"
        acc.replies.append(
            screens.brief(acc.flows, acc.session, node.invalid, node, acc.channel, acc.courses)
        )
    else:
        acc.replies.append(screens.not_understood(acc.flows, acc.session, node, acc.channel, acc.courses))


def _answer(acc: Acc, node: Node, text: str, folded: str) -> bool:
    """A free-text answer to a question; True when it was valid, saved, and she moved on."""
    target = answers.answer(acc, node, text, folded)
    if target is None:
        return False
    _enter(acc, target)
    return True


def _keyword(flows: FlowSet, folded: str) -> str | None:
    return best_keyword(folded, flows.keywords) if folded else None


def _enter(acc: Acc, ref: str, *, remember: bool = True) -> None:
    """She arrives at a node: record its topic, run its action, show its first screen."""
    node = acc.flows.nodes.get(ref) or acc.flows.node(MENU)
    if acc.channel == "sms" and _clears_chat(node) and DELETE_SMS in acc.flows.nodes:
        node = acc.flows.node(DELETE_SMS)  # never claim a deletion that cannot happen
    known = node.save == "district" and acc.session.district is not None
    if node.ask and known and node.next and acc.session.node != node.next:
        # The answer is known: ask again only when she comes back from where the question leads.
        _enter(acc, node.next, remember=remember)
        return
    moved = acc.session.at(node.ref) if remember else replace(acc.session, node=node.ref, part=0, page=0)
    acc.session = moved
    if node.topic:
        acc.events.append(TopicViewed(node.topic))
    if node.action is not None:
        then = actions.act(acc, node)
        if then.quiet:
            return  # the service answers with what the store decided
        if then.go is not None and then.go != node.ref:
            _enter(acc, then.go, remember=False)
            return
    action = node.action
    if action and action.kind == "escalate" and action.priority != "urgent" and not acc.counsellors.available:
        _away(acc)
        return
    _show(acc, node, 0)


def _clears_chat(node: Node) -> bool:
    return node.ref == CLEAR_CHAT or (node.action is not None and node.action.kind == "clear_chat")


def _away(acc: Acc) -> None:
    """Outside service hours: when counsellors are back, and the help lines meanwhile."""
    node = acc.flows.node(AWAY_NODE)
    reply = screens.screen(acc.flows, acc.session, node, 0, acc.courses, acc.channel)
    acc.replies.append(replace(reply, text=reply.text.replace("{time}", acc.counsellors.back_at or "")))


def _show(acc: Acc, node: Node, part: int) -> None:
    acc.session = replace(acc.session, node=node.ref, part=screens.part_shown(node, part, acc.channel))
    acc.replies.append(screens.screen(acc.flows, acc.session, node, part, acc.courses, acc.channel))


def _source(acc: Acc, node: Node) -> None:
    flows = acc.flows
    text = f"{flows.text(acc.lang, flows.strings['source_is'])} {flows.text(acc.lang, node.source or '')}"
    options = screens.options(
        flows, node, screens.last_part(node), acc.lang, acc.channel, acc.session, acc.courses
    )
    acc.session = replace(acc.session, node=node.ref, part=len(node.texts) - 1)
    acc.replies.append(Reply(text, options, screens.menu_label(flows, acc.lang, node.ref)))


def _shown(acc: Acc, node: Node) -> tuple[Option, ...]:
    """The options of the screen she sees, numbered as she sees them."""
    return screens.options(acc.flows, node, acc.session.part, acc.lang, acc.channel, acc.session, acc.courses)
