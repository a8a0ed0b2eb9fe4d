"""Logging, configured once per process by its ``main()``: one stderr handler, text or JSON, secrets masked.

Every record carries the job it is about (``job_id``, from :func:`job_context`), so a JSON line can be filtered
by job; the text format shows it in the message itself ("job 3f2a… queued").
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from typing import Literal

from queue_gateway.runtime import redact

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LogFormat = Literal["text", "json"]

# request-per-line loggers: their URLs may carry tokens, and they drown the job lines
QUIET = ("httpx", "httpcore", "aiohttp.access", "aio_pika", "aiormq", "discord.http", "discord.gateway")

_JOB_IN_LINE = re.compile(r"\bjob ([0-9a-f]{32})\b")
_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("detectbot_job_id", default=None)


class LogSetupError(ValueError):
    """The logging settings cannot be used (an unknown level or format); the message says what to use."""


def level_number(level: str) -> int:
    """``"info"`` → ``logging.INFO``; anything unknown is a one-sentence error naming the choices."""
    name = level.strip().upper()
    if name not in LEVELS:
        choices = ", ".join(LEVELS)
        raise LogSetupError(f"unknown log level {level!r}: use one of {choices} (--log-level or DETECTBOT_LOG_LEVEL)")
    return int(logging.getLevelName(name))


def configure(level: str = "INFO", secrets: Iterable[str] = (), *, fmt: str = "text") -> None:
    """Send every record to stderr at ``level`` and above, as text or JSON lines; mask ``secrets`` everywhere."""
    number = level_number(level)
    if fmt not in ("text", "json"):
        raise LogSetupError(f"unknown log format {fmt!r}: use text or json (DETECTBOT_LOG_FORMAT)")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_json_formatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(_stamp_job_id)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(number)
    for name in QUIET:
        logging.getLogger(name).setLevel(max(number, logging.WARNING))
    redact.install(secrets)


@contextlib.contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Every record logged inside (and in tasks started inside) carries ``job_id``."""
    token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(token)


def current_job_id() -> str | None:
    return _job_id.get()


def _stamp_job_id(record: logging.LogRecord) -> bool:
    """A handler filter (handlers run in the logging call's own context): adds ``job_id``, drops nothing.

    The job comes from :func:`job_context`, else from the line itself: every line about a job says "job <id>".
    """
    if getattr(record, "job_id", None) is None:
        job_id = _job_id.get()
        if job_id is None:
            found = _JOB_IN_LINE.search(record.getMessage())
            job_id = found.group(1) if found else None
        record.job_id = job_id
    return True


def _json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    formatter: logging.Formatter = JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(job_id)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        timestamp=False,
    )
    return formatter
