"""Logging that never carries a phone number, a chat id, a bot token or her words.

Our own code logs none of these. The filter is the second line of defence for libraries: httpx logs Bot
API URLs (which carry the token) and the twilio SDK logs requests, so both are quietened and redacted.
"""

from __future__ import annotations

import logging
import re

_SECRETS = (
    (re.compile(r"bot\d{5,}:[A-Za-z0-9_-]{20,}"), "bot<token>"),  # Telegram bot token in Bot API URLs
    (re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{30,}\b"), "<token>"),
    (re.compile(r"(?<![\w])\+?\d[\d\s()-]{7,}\d"), "<number>"),  # phone numbers and long ids
    (re.compile(r"tg:-?\d+"), "tg:<id>"),
    (re.compile(r"\b(AC|SM|MG|MM)[0-9a-f]{32}\b"), r"\1<sid>"),  # Twilio account and message SIDs
)
NOISY = (
    "httpx",
    "httpcore",
    "twilio",
    "telegram",
    "aiosqlite",
    "asyncio",
    "sqlalchemy.engine",
    "alembic",  # "Context impl ...", "Running upgrade ...": noise in serve's output and in the terminal chat
)


def redact(text: str) -> str:
    """Text with tokens, phone numbers and chat ids replaced by placeholders."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites every record's message through `redact` before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info:
            # A traceback's last line is the exception's message, which may quote a token or a number;
            # formatters cache the text on the record, so the redacted one is what every handler shows.
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(text)
        return True


def install_redaction(handler: logging.Handler) -> None:
    """Make a handler redact what it writes."""
    if not any(isinstance(f, RedactingFilter) for f in handler.filters):
        handler.addFilter(RedactingFilter())


def configure_logging(level: str = "INFO") -> None:
    """Root logging to stderr with redaction; chatty libraries only at WARNING."""
    root = logging.getLogger()
    if not root.handlers:
        stream = logging.StreamHandler()
        stream.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(stream)
    for handler in root.handlers:
        install_redaction(handler)
    root.setLevel(level.upper())
    for name in NOISY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
