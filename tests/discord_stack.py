"""The Discord stack for end-to-end tests: fake Discord + real gateway + real worker + the real bot."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from bots.discord.bot import DiscordBot
from bots.discord.settings import DiscordSettings
from bots.shared.services import build_services
from db.models import Job
from tests.conftest import eventually
from tests.fakes.discord_api import Call, FakeDiscord
from tests.services import API_KEY, GatewayHandle, WorkerHandle, stopped_within

FIXED = "py:tests.detectors:fixed"
USER = 1_190_000_000_000_000_042
GUILD = 1_190_000_000_000_000_500
CHANNEL = 1_190_000_000_000_000_600
ORIGINAL = "PATCH /webhooks/*/messages/@original"
FOLLOWUP = "POST /webhooks/*"


@dataclass
class Stack:
    fake: FakeDiscord
    gateway: GatewayHandle
    bot: DiscordBot
    start_worker: Callable[..., Awaitable[WorkerHandle]]

    async def jobs(self) -> list[Job]:
        async with self.gateway.sessions() as session:
            return list((await session.scalars(select(Job).order_by(Job.received_at))).all())

    async def job_count(self) -> int:
        async with self.gateway.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(Job)) or 0)

    async def slash(self, *attachments: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return await self.fake.create_slash_interaction(
            "detect", user_id=USER, channel_id=CHANNEL, guild_id=GUILD, attachments=list(attachments), **kwargs
        )

    async def status(self, prefix: str | tuple[str, ...], *, timeout: float = 30) -> Call:
        """The bot's or the gateway's edit of the deferred message to a text starting with ``prefix``."""
        calls = await self.fake.wait_for_call(ORIGINAL, lambda c: _content(c).startswith(prefix), timeout=timeout)
        return calls[0]

    async def delivered(self) -> Job:
        """Wait until the one job is delivered and its status message handled; return it."""

        async def check() -> Job | None:
            jobs = await self.jobs()
            done = [j for j in jobs if j.delivered_at and j.status_message_id == j.status_edited_id is not None]
            return done[0] if len(done) == len(jobs) == 1 else None

        return await eventually(check, timeout=30, what="the delivery and its status edit")


def bot_settings(fake: FakeDiscord, gateway: GatewayHandle, **overrides: Any) -> DiscordSettings:
    values: dict[str, Any] = {
        "discord_token": SecretStr(fake.token),
        "discord_api_url": fake.api_base,
        "discord_gateway_url": fake.gateway_url,
        "discord_guild_ready_timeout": 0.05,
        "gateway_url": gateway.url,
        "api_key": SecretStr(API_KEY),
    }
    values.update(overrides)
    return DiscordSettings(**values)


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord()
    await fake.start()
    try:
        with fake.point_discord_py_here():  # restores discord.py's globals whatever the bot and gateway set
            yield fake
    finally:
        await fake.close()


def make_bot(settings: DiscordSettings, http: aiohttp.ClientSession) -> DiscordBot:
    """The bot as ``bots.discord.main`` builds it."""
    return DiscordBot(settings, build_services(http, settings, platform="discord"), http)


@pytest.fixture
async def start_discord(
    fake_discord: FakeDiscord, start_gateway, start_worker, http: aiohttp.ClientSession, tmp_path
) -> AsyncIterator[Callable[..., Awaitable[Stack]]]:
    bots: list[DiscordBot] = []

    async def start(
        *,
        worker: bool = True,
        database_url: str | None = None,
        gateway_overrides: dict[str, Any] | None = None,
        **bot_overrides: Any,
    ) -> Stack:
        gateway = await start_gateway(
            database_url=database_url,
            discord_token=SecretStr(fake_discord.token),
            discord_api_url=fake_discord.api_base,
            **(gateway_overrides or {}),
        )

        async def worker_now(model: str = FIXED) -> WorkerHandle:
            return await start_worker(gateway, model=model)

        if worker:
            await worker_now()
        bot = make_bot(bot_settings(fake_discord, gateway, data_dir=tmp_path / "discord-bot", **bot_overrides), http)
        await bot.start()
        bots.append(bot)
        return Stack(fake_discord, gateway, bot, worker_now)

    yield start
    for bot in bots:
        await stopped_within(bot.stop(), 45, "the Discord bot")


def _content(call: Call) -> str:
    return str((call.json or {}).get("content") or "")
