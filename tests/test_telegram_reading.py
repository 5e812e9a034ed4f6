"""Her plainest updates are read straight from the JSON; everything else by python-telegram-bot's parse.
Both readings must say the same of every update: the same turn, the same ignoring, the same refusal."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from bot.channels import telegram_updates
from bot.channels.telegram_updates import Action, NotAnUpdate, Turn, parse_update, read, read_update
from tests.fakes.telegram_api import MEDIA_KINDS, Her

ODD_VALUES: tuple[Any, ...] = (
    None,
    "",
    "x",
    "100001",
    0,
    -7,
    1.5,
    True,
    False,
    2**52,
    10**13,
    {},
    [],
    {"id": 1},
)


def by_the_parse(data: object) -> tuple[int, Action] | str:
    """What the parse and `read` alone make of it (as read_update did before the plain reading)."""
    try:
        update = parse_update(data, None)
        try:
            return update.update_id, read(update)
        except Exception:  # read_update says this as NotAnUpdate
            return "refused"
    except NotAnUpdate:
        return "refused"


def as_read(data: object) -> tuple[int, Action] | str:
    try:
        return read_update(data, None)
    except NotAnUpdate:
        return "refused"


def every_update_of_hers() -> Iterator[dict[str, Any]]:
    her = Her()
    yield her.says("Салом")
    yield her.says("/start")
    yield {**her.says("hi"), "message": {k: v for k, v in her.says("hi")["message"].items() if k != "from"}}
    for kind in MEDIA_KINDS:
        yield her.sends(kind)
        yield her.sends(kind, caption="my husband left")
    yield her.presses("menu:1")
    yield her.edits("corrected")
    yield her.blocks_the_bot()
    yield her.unblocks_the_bot()
    yield her.says_in_group("hello")
    yield her.posts_in_channel("news")
    yield her.inline_query("q")
    yield her.poll_update()
    yield her.unknown_update()


def bent(update: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The update with one field of her message, chat or sender removed, changed to an odd value, or
    joined by a field the plain reading does not know."""
    places = (("message",), ("message", "chat"), ("message", "from"))
    for place in places:
        target = update
        for key in place:
            target = target[key]
        for key in (*target, "entities", "caption", "photo", "is_topic_message"):
            for change in ("remove", *ODD_VALUES):
                if change == "remove" and key not in target:
                    continue
                changed = copy.deepcopy(update)
                inner = changed
                for step in place:
                    inner = inner[step]
                if change == "remove":
                    del inner[key]
                else:
                    inner[key] = change
                yield changed


def test_her_text_in_a_private_chat_is_read_without_the_parse() -> None:
    update = Her().says("Салом")
    plain = telegram_updates._plain_text(update["update_id"], {"message": update["message"]})
    assert isinstance(plain, Turn)
    assert as_read(update) == by_the_parse(update)


def test_every_kind_of_update_is_read_as_the_parse_reads_it() -> None:
    for update in every_update_of_hers():
        assert as_read(update) == by_the_parse(update), update


def test_every_bent_text_message_is_read_as_the_parse_reads_it() -> None:
    plain_read = 0
    checked = 0
    for base in (Her().says("Салом"), Her(chat_id=2**40).says("1")):
        for update in bent(base):
            checked += 1
            assert as_read(update) == by_the_parse(update), update
            if telegram_updates._plain_text(update["update_id"], {"message": update["message"]}):
                plain_read += 1
    assert checked > 500
    assert plain_read > 20  # the plain reading took part (some odd values are still plain)
