"""The console's live feed as server-sent events: `GET /console/events`.

Each message names a case and how urgent it is, never her words: the page asks for the fragments it
shows. Every message has an `id:`, so a browser that reconnects sends Last-Event-ID and gets exactly what
it missed. A comment every 15 seconds keeps proxies from closing a quiet stream. A stream ends by itself
after a few minutes and the browser reconnects at once, so a logged-out session stops being served; and
every stream ends as soon as the server is told to stop.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from types import FrameType
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from api.console.common import Handler, ListenerDep
from bot.cases.listen import RELOAD, FeedEvent, Listener

router = APIRouter(prefix="/console")

KEEP_ALIVE_SECONDS = 15.0
STREAM_SECONDS = 120.0
RETRY_MS = 1000  # how soon the browser reconnects after a stream ends
HEADERS = {
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",  # nginx: pass each message on at once
    "X-Content-Type-Options": "nosniff",
}


@router.get("/events")
async def events(
    staff: Handler,
    listener: ListenerDep,
    after: Annotated[int | None, Query(ge=0)] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
) -> StreamingResponse:
    """Feed events after Last-Event-ID (a reconnect), else after `after` (the page's own start), else
    from now."""
    resume = int(last_event_id) if last_event_id and last_event_id.isdigit() else after
    return StreamingResponse(stream(listener, resume), media_type="text/event-stream", headers=HEADERS)


async def stream(
    listener: Listener,
    after: int | None,
    *,
    keep_alive: float = KEEP_ALIVE_SECONDS,
    lasts: float = STREAM_SECONDS,
) -> AsyncIterator[str]:
    """The text of the event stream: a retry hint, then events as they come and keep-alive comments."""
    async with listener.subscribe(after) as subscription:
        yield f"retry: {RETRY_MS}\n\n"
        ends = time.monotonic() + lasts
        while (left := ends - time.monotonic()) > 0:
            batch = await subscription.next(within=min(keep_alive, left))
            if subscription.ended:
                return
            yield "".join(message(event) for event in batch) if batch else ": keep-alive\n\n"


def end_streams_at_exit(listener: Listener) -> None:
    """End every event stream as soon as the server is told to stop (SIGTERM, Ctrl+C).

    A server waits for open responses before it shuts down, and an event stream never ends by itself: an
    open console would hold `hamroh serve` for minutes, past the point where a container is killed. So the
    server's own signal handlers are wrapped (in the main thread only, where signals arrive) to end the
    streams first; browsers reconnect to whichever process serves next, and resume by Last-Event-ID.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(number)
        if not callable(previous):  # nobody handles it: the process just ends, streams with it
            continue

        def handler(
            sig: int, frame: FrameType | None, previous: Callable[[int, FrameType | None], Any] = previous
        ) -> None:
            loop.call_soon_threadsafe(listener.end_subscriptions)
            previous(sig, frame)

        signal.signal(number, handler)


def message(event: FeedEvent) -> str:
    """One event in the wire format: `case` for a change to a case, `reload` when some were dropped."""
    if event.kind == RELOAD:
        return f"id: {event.id}\nevent: reload\ndata: {{}}\n\n"
    data = {"kind": event.kind, "case": event.case_id, "priority": event.priority, "queue": event.queue}
    return f"id: {event.id}\nevent: case\ndata: {json.dumps(data)}\n\n"
