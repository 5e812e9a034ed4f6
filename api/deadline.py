"""A webhook's work under a time limit that holds even when the database hangs.

`asyncio.timeout` is not enough: it cancels the work and then waits for it to unwind, and unwinding a
turn means rolling back over the connection that hangs. Here the answer is given at the limit; the
cancelled work rolls back behind it (bounded by the engine's command timeout). Its transaction never
commits unless the commit was already on its way; then the provider's retry is dropped as a duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

_unwinding: set[asyncio.Task[Any]] = set()  # cancelled work still rolling back: kept until it ends


class TooSlow(Exception):
    """The work did not finish within its time limit; it has been cancelled."""


async def within(seconds: float, work: Coroutine[Any, Any, T]) -> T:
    """The result of `work`, or TooSlow once `seconds` have passed (its own exceptions pass through)."""
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:  # the request itself went away: so does its work
        _let_unwind(task)
        raise
    if not done:
        _let_unwind(task)
        raise TooSlow(f"not done within {seconds:g} s")
    return task.result()


def _let_unwind(task: asyncio.Task[Any]) -> None:
    task.cancel()
    _unwinding.add(task)
    task.add_done_callback(_unwound)


def _unwound(task: asyncio.Task[Any]) -> None:
    _unwinding.discard(task)
    if not task.cancelled() and task.exception() is not None:
        # The class only: a database error's message may carry a statement's parameters.
        log.info("cancelled work ended with %s", type(task.exception()).__name__)
