"""What can go wrong with an account, said plainly (a message never holds a password or a token)."""

from __future__ import annotations


class StaffError(Exception):
    """An account operation that cannot be done; the message says why."""


class UnknownStaff(StaffError):
    """No account has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no staff account is named {name!r}")


class NameTaken(StaffError):
    """Another account has this name already."""

    def __init__(self, name: str) -> None:
        super().__init__(f"a staff account named {name!r} exists already")


class BadName(StaffError):
    """A name that cannot identify an account."""


class BadRole(StaffError):
    """A role Hamroh does not know."""


class WeakPassword(StaffError):
    """A password too short (or absurdly long) to accept."""


class AccountDisabled(StaffError):
    """The account is disabled: nothing new is issued to it."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the staff account {name!r} is disabled")
