"""Rate limits for sending: a token bucket per channel and a minimum gap per chat.

Telegram allows about 30 messages a second overall and 1 a second to one chat; Twilio a configured number
of segments a second. The clock and the sleep are passed in so tests are exact.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Sleep = Callable[[float], Awaitable[None]]


@dataclass
class TokenBucket:
    """`rate` units a second on average, bursts up to `burst` units."""

    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    sleep: Sleep = asyncio.sleep
    full: bool = True  # False: empty until first used, so the first units come at the rate, not at once
    _tokens: float = field(init=False)
    _last: float | None = field(init=False)
    _paused_until: float = field(init=False, default=0.0)
    _lock: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self._tokens = self.burst if self.full else 0.0
        self._last = self.clock() if self.full else None

    async def take(self, units: float = 1) -> None:
        """Wait until `units` may be spent, then spend them (callers are served in arrival order)."""
        units = min(units, self.burst)  # a message larger than a burst still goes, alone
        async with self._lock:
            while True:
                now = self.clock()
                if now < self._paused_until:
                    await self.sleep(self._paused_until - now)
                    continue
                last = now if self._last is None else self._last
                self._tokens = min(self.burst, self._tokens + max(0.0, now - last) * self.rate)
                self._last = max(last, now)
                if self._tokens >= units - 1e-9:  # float steps of 1/rate must not fall just short
                    self._tokens = max(0.0, self._tokens - units)
                    return
                await self.sleep((units - self._tokens) / self.rate)

    def pause(self, seconds: float) -> None:
        """The provider said "too many requests, wait": nobody on this bucket sends until then."""
        self._paused_until = max(self._paused_until, self.clock() + seconds)
        self._tokens, self._last = 0.0, self._paused_until  # nothing is earned while paused


@dataclass
class PerChatGap:
    """At most one message every `gap` seconds to one chat."""

    gap: float
    clock: Callable[[], float] = time.monotonic
    sleep: Sleep = asyncio.sleep
    _next: dict[str, float] = field(default_factory=dict)

    async def ready(self, chat: str) -> None:
        """Wait until this chat's turn may come, without booking it (`wait` books it, right before a send)."""
        ready = self._next.get(chat)
        if ready is not None and (now := self.clock()) < ready:
            await self.sleep(ready - now)

    async def wait(self, chat: str) -> None:
        """Wait for this chat's turn, and book the next one."""
        now = self.clock()
        ready = self._next.get(chat, now)
        self._next[chat] = max(ready, now) + self.gap
        if ready > now:
            await self.sleep(ready - now)
        if len(self._next) > 10_000:  # forget chats whose turn has long passed
            self._next = {c: t for c, t in self._next.items() if t > now}
