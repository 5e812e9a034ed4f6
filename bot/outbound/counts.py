"""What a dispatcher did since it started (logged, and printed by benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Counts:
    """What this dispatcher did since it started."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    rate_limited: int = 0  # the provider answered 429
    in_doubt_resent: int = 0  # replies in flight when a dispatcher died, queued again
    in_doubt_held: int = 0  # bulk messages in flight when a dispatcher died, not sent again
    record_retried: int = 0  # results recorded again after the database connection broke
    stood_down: int = 0  # claimed, then not sent: the sender lock was lost before the send
