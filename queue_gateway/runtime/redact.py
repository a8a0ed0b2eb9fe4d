"""Secrets (bot tokens, API keys) never reach a log line.

python-telegram-bot's httpx logs request URLs, and those contain the bot token; discord.py's webhook routes
contain interaction tokens. ``install(secrets)`` wraps the log-record factory, so every record from every
logger, whoever handles it, is cleaned when it is created. A leaf module: the bots, the gateway and the CLI
call ``install`` at their composition roots (never at import time).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

MASK = "[REDACTED]"
# Telegram bot tokens: "<digits>:<35 url-safe chars>", caught even when not configured here
TELEGRAM_TOKEN = re.compile(r"(?<!\d)\d{6,12}:[A-Za-z0-9_-]{30,}")
# Discord interaction tokens (webhook URLs, gateway events): base64 of "interaction:<id>:..." — 15-minute credentials
INTERACTION_TOKEN = re.compile(r"aW50ZXJhY3Rpb246[A-Za-z0-9_.=-]+")

RecordFactory = Callable[..., logging.LogRecord]


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        self.secrets.update(s for s in secrets if s and len(s) >= 8)

    def redact(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        return INTERACTION_TOKEN.sub(MASK, TELEGRAM_TOKEN.sub(MASK, text))


class RedactingRecordFactory:
    """Wraps the previous factory; formats each record once, at creation, and masks any secret in it."""

    def __init__(self, previous: RecordFactory, redactor: Redactor) -> None:
        self.previous = previous
        self.redactor = redactor

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed %-format: leave it to the handler to report
            return record
        # always freeze the text: arguments are often mutable objects that change after the call (PTB turns a
        # logged file path into a URL with the token in it), and a handler that formats later would leak it
        record.msg, record.args = self.redactor.redact(message), None
        if record.exc_info and record.exc_info[1] is not None:
            # the whole traceback, chained causes included ("During handling of the above exception…"): a token in
            # any of them, or in a frame's source line, is masked too
            record.exc_text = self.redactor.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return record


def install(secrets: Iterable[str]) -> Redactor:
    """Mask these secrets (and anything shaped like a Telegram token) in every log record from now on."""
    current = logging.getLogRecordFactory()
    if isinstance(current, RedactingRecordFactory):
        current.redactor.add(secrets)
        return current.redactor
    redactor = Redactor(secrets)
    logging.setLogRecordFactory(RedactingRecordFactory(current, redactor))
    return redactor
