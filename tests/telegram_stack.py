"""The Telegram stack for end-to-end tests: fake Telegram + real gateway + real worker + the real bot."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from bots.shared.services import build_services
from bots.telegram.bot import TelegramBot
from bots.telegram.settings import TelegramSettings
from db.models import Job
from tests.fakes.telegram_api import Call, FakeTelegram
from tests.services import API_KEY, GatewayHandle, stopped_within

FIXED = "py:tests.detectors:fixed"


@dataclass
class Stack:
    fake: FakeTelegram
    gateway: GatewayHandle
    bot: TelegramBot

    async def jobs(self) -> int:
        async with self.gateway.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(Job)) or 0)

    async def delivered(self, method: str, count: int = 1, *, timeout: float = 30) -> list[Call]:
        return await self.fake.wait_for_call(method, timeout=timeout, count=count)


def bot_settings(fake: FakeTelegram, gateway: GatewayHandle, **overrides: Any) -> TelegramSettings:
    values: dict[str, Any] = {
        "telegram_token": SecretStr(fake.token),
        "telegram_api_url": fake.base_url,
        "telegram_file_url": fake.base_file_url,
        "gateway_url": gateway.url,
        "api_key": SecretStr(API_KEY),
        "album_quiet_s": 0.3,
    }
    values.update(overrides)
    return TelegramSettings(**values)


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


def make_bot(settings: TelegramSettings, http: aiohttp.ClientSession) -> TelegramBot:
    """The bot as ``bots.telegram.main`` builds it."""
    return TelegramBot(settings, build_services(http, settings, platform="telegram"))


@pytest.fixture
async def start_telegram(
    fake_telegram: FakeTelegram, start_gateway, start_worker, http: aiohttp.ClientSession
) -> AsyncIterator[Callable[..., Awaitable[Stack]]]:
    bots: list[TelegramBot] = []

    async def start(
        *,
        model: str = FIXED,
        worker: bool = True,
        database_url: str | None = None,
        gateway_overrides: dict[str, Any] | None = None,
        **bot_overrides: Any,
    ) -> Stack:
        gateway = await start_gateway(
            database_url=database_url,
            telegram_token=SecretStr(fake_telegram.token),
            telegram_api_url=fake_telegram.base_url,
            telegram_file_url=fake_telegram.base_file_url,
            **(gateway_overrides or {}),
        )
        if worker:
            await start_worker(gateway, model=model)
        bot = make_bot(bot_settings(fake_telegram, gateway, **bot_overrides), http)
        await bot.start()
        bots.append(bot)
        return Stack(fake_telegram, gateway, bot)

    yield start
    for bot in bots:
        await stopped_within(bot.stop(), 45, "the Telegram bot")


@pytest.fixture
async def telegram(start_telegram) -> Stack:
    return await start_telegram()
