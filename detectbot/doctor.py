"""``detectbot doctor``: check what a deployment needs, one line each, and say what to fix.

It reads the same DETECTBOT_* settings (and .env) as the services, and checks the broker, the database and its
migrations, the model, the gateway and the bots' key, the Telegram and Discord tokens, and the admin ids.
The exit status is 0 when nothing failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aio_pika
import aiohttp
from pydantic import ValidationError

from queue_gateway.runtime.config import safe_url, settings_problem
from queue_gateway.runtime.errors import CannotStart

Check = Callable[[], Awaitable[str | None]]


class Problem(Exception):
    """A check failed; ``str()`` says what is wrong and what to set."""


class Off(Exception):
    """A feature is off for want of a setting; ``str()`` says what it means and how to turn it on."""


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    status: str  # ok | FAIL | skip | off
    detail: str


async def run_doctor() -> int:
    results = [await _run(name, check) for name, check in _checks()]
    width = max(len(r.name) for r in results)
    for result in results:
        print(f"{result.status:<4}  {result.name:<{width}}  {result.detail}")
    failed = [r for r in results if r.status == "FAIL"]
    print(f"\n{len(failed)} problem(s) found." if failed else "\nAll good.")
    return 1 if failed else 0


def _checks() -> list[tuple[str, Check]]:
    return [
        ("settings", _settings),
        ("broker", _broker),
        ("database", _database),
        ("model", _model),
        ("gateway", _gateway),
        ("api keys", _keys),
        ("telegram", _telegram),
        ("discord", _discord),
        ("admins", _admins),
        ("webhooks", _webhooks),
    ]


async def _run(name: str, check: Check) -> Result:
    try:
        detail = await asyncio.wait_for(check(), 30)
    except (Problem, CannotStart) as exc:
        return Result(name, "FAIL", str(exc))
    except Off as exc:
        return Result(name, "off", str(exc))
    except TimeoutError:
        return Result(name, "FAIL", "no answer within 30 s")
    if detail is None:
        return Result(name, "skip", "not configured")
    return Result(name, "ok", detail)


def _load(cls: type) -> object:
    try:
        return cls()
    except ValidationError as exc:
        raise Problem(settings_problem(exc)) from None


async def _settings() -> str:
    from bots.discord.settings import DiscordSettings
    from bots.telegram.settings import TelegramSettings
    from queue_gateway.settings import GatewaySettings
    from worker.settings import WorkerSettings

    for cls in (GatewaySettings, WorkerSettings, TelegramSettings, DiscordSettings):
        _load(cls)
    return "every DETECTBOT_* setting is valid"


async def _broker() -> str:
    from worker.settings import WorkerSettings

    url = WorkerSettings().amqp_url
    try:
        connection = await aio_pika.connect(url, timeout=5)
    except Exception as exc:
        raise Problem(
            f"cannot reach RabbitMQ at {safe_url(url)} ({type(exc).__name__}); start it, or set DETECTBOT_AMQP_URL"
        ) from None
    await connection.close()
    return safe_url(url)


async def _database() -> str:
    from queue_gateway.service import database_status
    from queue_gateway.settings import GatewaySettings

    return await database_status(GatewaySettings())


async def _model() -> str:
    from worker.errors import ModelUnavailable
    from worker.model_loader import choose_model, resolve_model
    from worker.settings import WorkerSettings

    settings = WorkerSettings()
    spec = await asyncio.to_thread(choose_model, settings.model, settings.data_dir)
    if spec.startswith("py:"):
        return f"{spec} (a detector of your own)"
    try:
        resolved = await asyncio.to_thread(
            resolve_model, spec, data_dir=settings.data_dir, auto_export=False, allow_download=False
        )
    except ModelUnavailable as exc:
        raise Problem(str(exc)) from None  # an offline model's sentence says how to build it
    return f"{spec} ({resolved.backend}: {resolved.source})"


async def _gateway() -> str:
    from queue_gateway.public.settings import GatewayClientSettings

    settings = GatewayClientSettings()
    key = settings.api_key.get_secret_value() if settings.api_key else None
    headers = {"Authorization": f"Bearer {key}"} if key else {}  # an admin key gets the details
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        try:
            async with http.get(f"{settings.gateway_url.rstrip('/')}/readyz", headers=headers) as response:
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise Problem(
                f"no gateway answers at {settings.gateway_url} ({type(exc).__name__}); start `detectbot gateway`, "
                "or set DETECTBOT_GATEWAY_URL"
            ) from None
    if response.status != 200:
        failing = ", ".join(f"{k}: {v}" for k, v in (body.get("checks") or {}).items() if v != "ok")
        detail = failing or "its /readyz names the cause to an admin key (DETECTBOT_API_KEY)"
        raise Problem(f"the gateway at {settings.gateway_url} is not ready ({detail})")
    return f"{settings.gateway_url} is ready"


async def _keys() -> str | None:
    from queue_gateway.auth import Role, parse_keys
    from queue_gateway.public.settings import GatewayClientSettings
    from queue_gateway.settings import GatewaySettings

    gateway = GatewaySettings()
    client = GatewayClientSettings()
    roles = parse_keys(gateway.api_keys)
    if not roles and client.api_key is None:
        return None
    notes = []
    if roles:
        counts = {role: sum(1 for entry in roles if entry.role == role) for role in Role}
        notes.append(", ".join(f"{n} {role.name.lower()}" for role, n in counts.items() if n) + " key(s)")
    if client.api_key is not None:
        notes.append(await _key_role(client.gateway_url, client.api_key.get_secret_value()))
    return "; ".join(notes)


async def _key_role(gateway_url: str, key: str) -> str:
    """What the gateway says of DETECTBOT_API_KEY (the bots' and the CLI's key)."""
    headers = {"Authorization": f"Bearer {key}"}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
            http.get(f"{gateway_url.rstrip('/')}/v1/stats", headers=headers) as response,
        ):
            status = response.status
    except (aiohttp.ClientError, TimeoutError):
        return "DETECTBOT_API_KEY not checked (no gateway)"
    if status == 401:
        raise Problem("the gateway does not know DETECTBOT_API_KEY: add it to the gateway's DETECTBOT_API_KEYS")
    if status == 403:
        raise Problem("DETECTBOT_API_KEY is a client key: the bots need a bot key (DETECTBOT_API_KEYS=…,bot:THAT-KEY)")
    return "DETECTBOT_API_KEY is a bot or admin key"


async def _telegram() -> str | None:
    from telegram import Bot
    from telegram.error import InvalidToken, TelegramError

    from bots.telegram.settings import TelegramSettings

    settings = TelegramSettings()
    if settings.telegram_token is None:
        return None
    bot = Bot(settings.telegram_token.get_secret_value(), base_url=settings.telegram_api_url)
    try:
        me = await bot.get_me()
    except InvalidToken:
        raise Problem("Telegram refused DETECTBOT_TELEGRAM_TOKEN: copy it again from @BotFather") from None
    except TelegramError as exc:
        raise Problem(f"cannot reach Telegram at {settings.telegram_api_url} ({exc})") from None
    return f"@{me.username}"


async def _discord() -> str | None:
    from bots.discord.settings import DiscordSettings

    settings = DiscordSettings()
    if settings.discord_token is None:
        return None
    headers = {"Authorization": f"Bot {settings.discord_token.get_secret_value()}"}
    url = f"{settings.discord_api_url.rstrip('/')}/users/@me"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
            http.get(url, headers=headers) as response,
        ):
            status = response.status
            body = await response.json(content_type=None) if status == 200 else {}
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise Problem(f"cannot reach Discord at {settings.discord_api_url} ({type(exc).__name__})") from None
    if status == 401:
        raise Problem("Discord refused DETECTBOT_DISCORD_TOKEN: reset it in the developer portal's Bot page")
    if status != 200:
        raise Problem(f"Discord answered {status} for the bot's own user")
    return f"{body.get('username', '?')} (id {body.get('id', '?')})"


async def _admins() -> str | None:
    from bots.shared.settings import BotSettings

    settings = BotSettings()
    if not settings.admin_ids:
        return None
    return f"{len(settings.admin_ids)} admin id(s): {', '.join(map(str, settings.admin_ids))}"


async def _webhooks() -> str:
    from queue_gateway.settings import GatewaySettings

    settings = GatewaySettings()
    if settings.webhook_secret is None:
        raise Off(
            "DETECTBOT_WEBHOOK_SECRET is not set: jobs that ask for a webhook_url are refused. Make one with "
            "python -c \"import base64,os;print('whsec_'+base64.b64encode(os.urandom(32)).decode())\""
        )
    private = ", also to private addresses" if settings.webhook_allow_private else ""
    return f"signed and sent to public addresses{private}, retried for {settings.webhook_retry_s / 3600:g} h"
