"""Random secrets handed to a person or a browser once, and the digests under which they are stored.

A token has 256 random bits, so a plain SHA-256 digest is enough to store it: unlike a password it cannot
be guessed, and a leaked table of digests gives nobody a usable token.
"""

from __future__ import annotations

import hashlib
import secrets

# The prefix lets secret scanners and people recognise a leaked token; it is no secret itself.
API_TOKEN_PREFIX = "hamroh_"  # noqa: S105


def new_secret() -> str:
    """A fresh random token, safe in a cookie, a header or a form field."""
    return secrets.token_urlsafe(32)


def new_api_token() -> str:
    """A fresh API token, recognisable by its prefix."""
    return API_TOKEN_PREFIX + new_secret()


def digest(token: str) -> str:
    """The SHA-256 hex digest under which a token is stored and looked up."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
