"""Following the README literally: the keys its "Using it" and "Deploy" steps set make an admin's /stats work.

The settings are taken from the README's own code blocks (and, for Deploy, through compose.yaml's
interpolation), so a README or compose change that breaks /stats for the people following it fails here.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bots.shared.settings import BotSettings
from queue_gateway.auth import Role, parse_keys
from queue_gateway.public import texts
from queue_gateway.settings import GatewaySettings
from tests.deploy.test_deploy import config
from tests.discord_stack import CHANNEL, GUILD
from tests.discord_stack import bot_settings as discord_settings
from tests.discord_stack import make_bot as make_discord_bot
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.telegram_api import FakeTelegram
from tests.services import GatewayHandle
from tests.telegram_stack import bot_settings as telegram_settings
from tests.telegram_stack import make_bot as make_telegram_bot

ROOT = Path(__file__).resolve().parents[2]
STATS_LINE = texts.text("stats_jobs", received=0, done=0, delivered=0, failed=0, dead=0)


def section(title: str) -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index(f"\n## {title}\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end > 0 else None]


def using_it_environment() -> dict[str, str]:
    """The variables the README's "Using it" block exports."""
    block = section("Using it")
    (line,) = [line for line in block.splitlines() if line.startswith("export ")]
    return dict(word.split("=", 1) for word in shlex.split(line)[1:])


def deploy_environment() -> dict[str, str]:
    """The .env the README's "Deploy" block writes, with its ``$(openssl rand -hex N)`` run."""
    block = section("Deploy")
    body = re.search(r"cat > \.env <<(\w+)\n(.*?)\n\1\n", block, re.S)
    assert body, "the Deploy section no longer writes a .env"
    env = {}
    for line in body.group(2).splitlines():
        name, value = line.split("=", 1)
        value = re.sub(r"\$\(openssl rand -hex (\d+)\)", lambda m: secrets.token_hex(int(m.group(1))), value)
        env[name] = value
    return env


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> tuple[list[SecretStr], str, list[int]]:
    """What the gateway and a bot read from these variables: the gateway's keys, the bot's key, the admin ids."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    gateway_keys = GatewaySettings(_env_file=None).api_keys  # type: ignore[call-arg]
    bot = BotSettings(_env_file=None)  # type: ignore[call-arg]
    assert bot.api_key is not None and bot.admin_ids, env
    for name in env:
        monkeypatch.delenv(name)
    return gateway_keys, bot.api_key.get_secret_value(), list(bot.admin_ids)


async def stats_in_both_chats(
    start_gateway: Callable[..., Awaitable[GatewayHandle]],
    http: aiohttp.ClientSession,
    fake_discord: FakeDiscord,
    gateway_keys: list[SecretStr],
    bot_key: str,
    admin: int,
) -> None:
    async with FakeTelegram() as telegram:
        gateway = await start_gateway(
            api_keys=gateway_keys,
            telegram_token=SecretStr(telegram.token), telegram_api_url=telegram.base_url,
            telegram_file_url=telegram.base_file_url,
            discord_token=SecretStr(fake_discord.token), discord_api_url=fake_discord.api_base,
        )  # fmt: skip
        common: dict[str, Any] = {"api_key": SecretStr(bot_key), "admin_ids": [admin]}
        telegram_bot = make_telegram_bot(telegram_settings(telegram, gateway, **common), http)
        discord_bot = make_discord_bot(discord_settings(fake_discord, gateway, **common), http)
        await telegram_bot.start()
        await discord_bot.start()
        try:
            telegram.send_text_update(admin, "/stats")
            (answer, *_) = await telegram.wait_for_call("sendMessage", lambda c: "Jobs:" in c.params["text"])
            assert STATS_LINE in answer.params["text"]

            interaction = await fake_discord.create_slash_interaction(
                "stats", user_id=admin, channel_id=CHANNEL, guild_id=GUILD
            )
            reply, *_ = await fake_discord.wait_for_call(f"POST /webhooks/*/{interaction['token']}*", timeout=30)
            assert STATS_LINE in reply.json["content"]
        finally:
            await telegram_bot.stop()
            await discord_bot.stop()


async def test_using_it_gives_admins_their_stats(
    start_gateway, http: aiohttp.ClientSession, fake_discord: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway_keys, bot_key, (admin,) = settings_from(using_it_environment(), monkeypatch)
    assert (Role.BOT, bot_key) in [(entry.role, entry.key) for entry in parse_keys(gateway_keys)]
    await stats_in_both_chats(start_gateway, http, fake_discord, gateway_keys, bot_key, admin)


async def test_deploy_gives_admins_their_stats(
    start_gateway, http: aiohttp.ClientSession, fake_discord: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = config(deploy_environment(), profiles=("telegram", "discord"))["services"]
    gateway_keys, _, _ = settings_from(
        {"DETECTBOT_API_KEYS": services["gateway"]["environment"]["DETECTBOT_API_KEYS"]} | _bot(services), monkeypatch
    )
    for name in ("telegram", "discord"):
        _, bot_key, (admin,) = settings_from(_bot(services, name), monkeypatch)
        await stats_in_both_chats(start_gateway, http, fake_discord, gateway_keys, bot_key, admin)


def _bot(services: dict[str, Any], name: str = "telegram") -> dict[str, str]:
    env = services[name]["environment"]
    return {key: env[key] for key in ("DETECTBOT_API_KEY", "DETECTBOT_ADMIN_IDS")}
