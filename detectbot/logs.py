"""Logging, configured once by the CLI: one stderr handler, %-style records, secrets masked."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from queue_gateway import redact

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # request-per-line loggers: URLs may carry tokens, and they drown the job lines
    for name in ("httpx", "httpcore", "aiohttp.access", "aio_pika", "aiormq"):
        logging.getLogger(name).setLevel(logging.WARNING)
    redact.install(secrets)
