"""What goes wrong with an announcement, said to the coordinator (the API maps each to a status)."""

from __future__ import annotations


class AnnouncementError(Exception):
    """An announcement cannot do what was asked; `reason` says why, in words for the coordinator."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AnnouncementNotFound(AnnouncementError):
    """No announcement has that id (404)."""


class AnnouncementConflict(AnnouncementError):
    """Not now: quiet hours without a reason, the wrong status, approval needed or one's own (409)."""


class AnnouncementInvalid(AnnouncementError):
    """What was written cannot be used: empty or over-long text, unknown district, bad time (422)."""
