"""Test helpers shared by both tiers, and the fixtures each tier uses.

- ``tests/unit`` and ``tests/fakes``: the fast tier. No RabbitMQ, no Postgres, no model files.
- ``tests/integration``: the real RabbitMQ, Postgres and SQLite, the real gateway, workers and bots (started by
  the same factories their ``main()`` uses), python-telegram-bot and discord.py against wire fakes of the
  platforms. Nothing mocks the broker, the database or a chat library.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest

from queue_gateway.runtime.redact import INTERACTION_TOKEN, TELEGRAM_TOKEN

pytest_plugins = [
    "tests.services",
    "tests.node_fixtures",
    "tests.conftest_models",
    "tests.telegram_stack",
    "tests.discord_stack",
    "tests.chat",
]

os.environ.setdefault("PTB_TIMEDELTA", "true")  # python-telegram-bot: timedelta retry_after, no deprecation warning

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T | None]], *, timeout: float = 20.0, every: float = 0.05, what: str = "condition"
) -> T:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(every)


# Every secret the tests hand to a service; none may ever appear in a log line.
SECRETS = [
    "test-bot-key-0123456789",
    "test-admin-key-0123456789",
    "test-client-key-0123456789",
    "test-other-client-key-0123456789",
    "test-signing-secret-0123456789abcdef",
    "FAKE.discord.bot-token-xyz",
]


class _LeakWatch(logging.Handler):
    """Keeps every log record, of the whole run, that shows a secret (a token, a key, the signing secret)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = f"{record.getMessage()}\n{record.exc_text or ''}"
        if any(secret in text for secret in SECRETS) or TELEGRAM_TOKEN.search(text) or INTERACTION_TOKEN.search(text):
            self.leaks.append(f"{record.name}: {text[:300]}")


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log() -> Iterator[None]:
    """A log scan over the whole test run: no bot token, no signing secret, no API key in any record."""
    watch = _LeakWatch()
    root = logging.getLogger()
    root.addHandler(watch)
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # one line per test request: noise
    yield
    root.removeHandler(watch)
    assert watch.leaks == [], "secrets in the logs:\n" + "\n".join(watch.leaks[:20])
