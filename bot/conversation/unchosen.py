"""Before she chose a language: a help word or "delete my data" as her first messages, answered in Tajik
and in Russian."""

from __future__ import annotations

from dataclasses import replace

from bot.conversation import screens
from bot.conversation.flows import Words
from bot.conversation.model import OFFERED_LANGUAGES, EraseRequested, Input, Option, Reply, Session
from bot.conversation.state import Acc

HELP = "main.help"
ERASE = "main.erase"


def asks_to_erase(words: Words, folded: str) -> bool:
    """Whether her message asks to delete her data: exactly a word for it, or a phrase for it anywhere
    ("пожалуйста, удалите мои данные"). The bot still asks before deleting anything."""
    return folded in words.erase or any(f" {p} " in f" {folded} " for p in words.erase_phrases)


def help_first(acc: Acc) -> None:
    """A help word as her first message: the help lines in Tajik and in Russian, before the welcome."""
    node = acc.flows.node(HELP)
    texts = []
    for lang in OFFERED_LANGUAGES:
        seen_as = replace(acc.session, lang=lang)
        texts.append(screens.screen(acc.flows, seen_as, node, screens.last_part(node), (), acc.channel).text)
    acc.replies.append(Reply("\n".join(texts)))


def erase_first(acc: Acc, inp: Input, folded: str) -> bool:
    """ "Delete my data" before she chose a language (her contact exists already): the question, then her
    answer to it, in Tajik and in Russian. True when this turn is done."""
    if asks_to_erase(acc.flows.words, folded):
        acc.session = replace(acc.session, node=ERASE, part=0, history=())
        acc.replies.append(_in_both_languages(acc, ERASE))
        return True
    if acc.session.node != ERASE:
        return False
    node = acc.flows.node(ERASE)
    shown = screens.options(acc.flows, node, 0, OFFERED_LANGUAGES[0], acc.channel)
    key = inp.button
    if key is None and folded.isdigit() and 1 <= int(folded) <= len(shown):
        key = shown[int(folded) - 1].key
    option = node.option(key.partition(":")[2]) if key and key.startswith(f"{ERASE}:") else None
    if option is None:
        return False  # not an answer to the question: a language, or the welcome again
    done = acc.flows.nodes.get(option.target)
    if done is None or done.action is None or done.action.kind != "erase":
        acc.session = replace(acc.session, node=None, part=0, history=())
        acc.replies.append(screens.welcome(acc.flows))  # "No": nothing deleted, the choice of language
        return True
    acc.session = Session(node=done.ref, last_active=acc.session.last_active)
    acc.events.append(EraseRequested())
    acc.replies.append(_in_both_languages(acc, done.ref))
    return True


def _in_both_languages(acc: Acc, ref: str) -> Reply:
    """A screen in Tajik then in Russian, each option labelled in both (before she chose a language)."""
    node = acc.flows.node(ref)
    shown = [
        screens.screen(acc.flows, replace(acc.session, lang=lang), node, 0, (), acc.channel)
        for lang in OFFERED_LANGUAGES
    ]
    labels = zip(*(reply.options for reply in shown), strict=True)
    options = tuple(Option(first.key, " / ".join(o.label for o in (first, *rest))) for first, *rest in labels)
    return Reply("\n".join(reply.text for reply in shown), options)
