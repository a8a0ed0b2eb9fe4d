"""``detectbot doctor`` against a real setup: healthy, then with the broker stopped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.discord_api import FakeDiscord
from tests.fakes.telegram_api import FakeTelegram
from tests.integration.test_cli_errors import clean_env, run
from tests.nodes import PrivateRabbitMQ
from tests.services import ADMIN_KEY, AMQP_URL, API_KEY, CLIENT_KEY, WEBHOOK_SECRET, GatewayHandle


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeTelegram, FakeDiscord]]:
    async with FakeTelegram() as telegram:
        discord = FakeDiscord()
        await discord.start()
        try:
            yield telegram, discord
        finally:
            await discord.close()


def doctor_env(gateway: GatewayHandle, telegram: FakeTelegram, discord: FakeDiscord, data_dir: Path) -> dict[str, str]:
    """The environment an operator would have set: the same keys, database and tokens the services use."""
    return clean_env(
        DETECTBOT_DATA_DIR=str(data_dir),
        DETECTBOT_DATABASE_URL=gateway.settings.database_url,
        DETECTBOT_AMQP_URL=AMQP_URL,
        DETECTBOT_GATEWAY_URL=gateway.url,
        DETECTBOT_API_KEYS=f"bot:{API_KEY},admin:{ADMIN_KEY},{CLIENT_KEY}",
        DETECTBOT_API_KEY=API_KEY,
        DETECTBOT_MODEL="py:tests.detectors:fixed",
        DETECTBOT_TELEGRAM_TOKEN=telegram.token,
        DETECTBOT_TELEGRAM_API_URL=telegram.base_url,
        DETECTBOT_DISCORD_TOKEN=discord.token,
        DETECTBOT_DISCORD_API_URL=discord.api_base,
        DETECTBOT_ADMIN_IDS="42",
        DETECTBOT_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )


def lines_of(out: str) -> dict[str, str]:
    """``{check name: its line}`` from doctor's table."""
    found = {}
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0] in {"ok", "FAIL", "skip", "off"}:
            found[line[6:].split("  ")[0].strip()] = line
    return found


async def test_a_healthy_setup_says_so(
    start_gateway, sqlite_url: str, fakes: tuple[FakeTelegram, FakeDiscord], tmp_path: Path
) -> None:
    telegram, discord = fakes
    gateway = await start_gateway(database_url=sqlite_url)
    code, out, err = await run("doctor", env=doctor_env(gateway, telegram, discord, tmp_path), cwd=tmp_path)
    assert "Traceback" not in err, err
    checks = lines_of(out)
    assert set(checks) == {"settings", "broker", "database", "model", "gateway", "api keys", "telegram", "discord",
                           "admins", "webhooks"}, out  # fmt: skip
    assert all(line.startswith("ok") for line in checks.values()), out
    assert f"@{telegram.bot_user['username']}" in checks["telegram"]
    assert "1 client, 1 bot, 1 admin key(s)" in checks["api keys"] and "bot or admin key" in checks["api keys"]
    assert "signed and sent to public addresses, retried for 24 h" in checks["webhooks"]
    assert out.rstrip().endswith("All good.") and code == 0


async def test_without_a_webhook_secret_it_says_webhooks_are_off_and_how_to_make_one(
    start_gateway, sqlite_url: str, fakes: tuple[FakeTelegram, FakeDiscord], tmp_path: Path
) -> None:
    telegram, discord = fakes
    gateway = await start_gateway(database_url=sqlite_url)
    env = doctor_env(gateway, telegram, discord, tmp_path) | {"DETECTBOT_WEBHOOK_SECRET": ""}
    code, out, _ = await run("doctor", env=env, cwd=tmp_path)
    line = lines_of(out)["webhooks"]
    assert line.startswith("off") and "DETECTBOT_WEBHOOK_SECRET is not set" in line and "whsec_" in line, out
    assert out.rstrip().endswith("All good.") and code == 0  # a feature left off is not a problem


async def test_with_the_broker_stopped_it_names_the_broker_and_the_setting(
    start_gateway, sqlite_url: str, fakes: tuple[FakeTelegram, FakeDiscord], tmp_path: Path
) -> None:
    telegram, discord = fakes
    gateway = await start_gateway(database_url=sqlite_url)
    broker = PrivateRabbitMQ(tmp_path / "rabbitmq")
    try:
        await broker.start()
        url = broker.url
        broker.kill()
    finally:
        broker.close()
    env = doctor_env(gateway, telegram, discord, tmp_path) | {"DETECTBOT_AMQP_URL": url}
    code, out, err = await run("doctor", env=env, cwd=tmp_path)
    assert "Traceback" not in err, err
    line = lines_of(out)["broker"]
    assert line.startswith("FAIL") and "cannot reach RabbitMQ at amqp://" in line and "DETECTBOT_AMQP_URL" in line
    assert [name for name, line in lines_of(out).items() if line.startswith("FAIL")] == ["broker"], out
    assert "1 problem(s) found." in out and code == 1


async def test_a_client_key_where_the_bots_need_a_bot_key(
    start_gateway, sqlite_url: str, fakes: tuple[FakeTelegram, FakeDiscord], tmp_path: Path
) -> None:
    telegram, discord = fakes
    gateway = await start_gateway(database_url=sqlite_url)
    env = doctor_env(gateway, telegram, discord, tmp_path) | {"DETECTBOT_API_KEY": CLIENT_KEY}
    code, out, _ = await run("doctor", env=env, cwd=tmp_path)
    line = lines_of(out)["api keys"]
    assert line.startswith("FAIL") and "client key" in line and "bot:" in line
    assert CLIENT_KEY not in out and code == 1
