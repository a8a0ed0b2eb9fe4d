"""The bots' own /healthz, /readyz and /metrics, as the compose healthchecks and Prometheus use them."""

from __future__ import annotations

import aiohttp

from tests.conftest import eventually
from tests.discord_stack import CHANNEL, GUILD, USER
from tests.images import jpeg


async def scrape(http: aiohttp.ClientSession, port: int, path: str) -> tuple[int, str]:
    async with http.get(f"http://127.0.0.1:{port}{path}") as response:
        return response.status, await response.text()


def photos_queued(metrics: str) -> float:
    for line in metrics.splitlines():
        if line.startswith('detectbot_bot_photos_total{outcome="queued"}'):
            return float(line.split()[-1])
    return 0.0


async def test_telegram_bot_health_readiness_and_metrics(start_telegram, http: aiohttp.ClientSession) -> None:
    stack = await start_telegram(http_port=0)
    port = stack.bot.health.port
    assert port is not None
    assert await scrape(http, port, "/healthz") == (200, '{"status": "ok"}')
    assert (await scrape(http, port, "/readyz"))[0] == 200
    assert photos_queued((await scrape(http, port, "/metrics"))[1]) == 0

    stack.fake.send_photo_update(chat_id=7, data=jpeg())
    await stack.delivered("sendPhoto")
    assert photos_queued((await scrape(http, port, "/metrics"))[1]) == 1

    await stack.bot.stop()
    try:
        await scrape(http, port, "/healthz")
    except aiohttp.ClientConnectionError:
        pass  # a stopped bot no longer answers: the healthcheck fails and the orchestrator restarts it
    else:
        raise AssertionError("the stopped bot still answers /healthz")


async def test_discord_bot_health_readiness_and_metrics(start_discord, http: aiohttp.ClientSession) -> None:
    stack = await start_discord(http_port=0)
    port = stack.bot.health.port
    assert port is not None
    assert (await scrape(http, port, "/healthz"))[0] == 200
    status, body = await scrape(http, port, "/readyz")
    assert status == 200 and "ready" in body

    attachment = stack.fake.add_attachment(jpeg(), "a.jpg", "image/jpeg")
    await stack.fake.create_slash_interaction(
        "detect", user_id=USER, channel_id=CHANNEL, guild_id=GUILD, attachments=[attachment]
    )
    await stack.delivered()
    assert photos_queued((await scrape(http, port, "/metrics"))[1]) == 1

    await stack.fake.drop_connections(code=4004)  # "authentication failed": discord.py will not reconnect
    await _until_not_ready(http, port)


async def _until_not_ready(http: aiohttp.ClientSession, port: int) -> None:
    async def not_ready() -> str | None:
        status, body = await scrape(http, port, "/readyz")
        return body if status == 503 else None

    body = await eventually(not_ready, timeout=20, what="/readyz to say the bot is not connected")
    assert "not connected to Discord" in body
