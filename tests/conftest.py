"""Test helpers shared by both tiers, and the fixtures each tier uses.

- ``tests/unit`` and ``tests/fakes``: the fast tier. No RabbitMQ, no Postgres, no model files.
- ``tests/integration``: the real RabbitMQ, Postgres and SQLite, the real gateway, workers and bots (started by
  the same factories their ``main()`` uses), python-telegram-bot and discord.py against wire fakes of the
  platforms. Nothing mocks the broker, the database or a chat library.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import TypeVar

pytest_plugins = ["tests.services", "tests.conftest_models", "tests.telegram_stack", "tests.discord_stack"]

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
