"""The Telegram bot: ``TelegramBot(settings, services)`` builds the Application around the shared services;
``start()``/``stop()`` run it (tests drive the same two calls, ``main()`` runs them under the signal runner)."""

from __future__ import annotations

import asyncio
import hmac
import logging
from urllib.parse import urlsplit

from aiohttp import web
from telegram import BotCommand, Update
from telegram.error import InvalidToken, TelegramError
from telegram.ext import Application

from bots.shared.metrics import HealthServer
from bots.shared.services import BotServices
from bots.telegram.handlers import Handlers
from bots.telegram.poller import DurablePoller, Ledger, handle
from bots.telegram.settings import TelegramSettings
from queue_gateway.public import texts
from queue_gateway.runtime import process, redact
from queue_gateway.runtime.config import secret_values
from queue_gateway.runtime.errors import CannotStart
from queue_gateway.runtime.telegram_http import AiohttpRequest

log = logging.getLogger(__name__)

BOT_API_CONNECTIONS = 16  # requests to the Bot API at once (getFile, downloads, answers)
COMMANDS = ("detect", "history", "settings", "help", "forget", "privacy")


def commands(lang: str | None) -> list[BotCommand]:
    """The command list as Telegram shows it, in ``lang``."""
    return [BotCommand(name, texts.text(f"cmd_{name}", lang)) for name in COMMANDS]


class TelegramBot:
    def __init__(self, settings: TelegramSettings, services: BotServices) -> None:
        if settings.telegram_token is None:
            raise CannotStart("set DETECTBOT_TELEGRAM_TOKEN to the token @BotFather gave you")
        process.use_ptb_timedelta()
        redact.install(secret_values(settings))
        self.settings = settings
        self.services = services
        self.ledger = Ledger()
        self.handlers = Handlers(settings, services, self.ledger)
        builder = (
            Application.builder()
            .token(settings.telegram_token.get_secret_value())
            .base_url(settings.telegram_api_url)
            .base_file_url(settings.telegram_file_url)
            .concurrent_updates(True)
            # PTB's calls over aiohttp: half the CPU of its default httpx request (benchmarks/bench_telegram_http.py)
            .request(AiohttpRequest(connections=BOT_API_CONNECTIONS))
            .get_updates_request(AiohttpRequest(connections=1))
            .updater(None)  # updates come through DurablePoller (or the webhook), confirmed once handled
        )
        self.application = builder.build()
        self.handlers.register(self.application)
        self.poller = DurablePoller(self.application, self.ledger)
        self.health = HealthServer(services.metrics, self.readiness, host=settings.http_host, port=settings.http_port)
        self._webhook: web.AppRunner | None = None
        self._started = False

    def readiness(self) -> str | None:
        if not self._started:
            return "starting"
        if self._webhook is None and not self.poller.running:
            return "not receiving updates from Telegram"
        return None

    async def start(self) -> None:
        settings = self.settings
        await self.health.start()
        app = self.application
        try:
            await app.initialize()
        except InvalidToken as exc:
            raise CannotStart("Telegram refused the bot token (check DETECTBOT_TELEGRAM_TOKEN)") from exc
        except TelegramError as exc:
            raise CannotStart(f"cannot reach Telegram at {settings.telegram_api_url}: {exc}") from exc
        self.handlers.username = app.bot.username
        await self._set_commands()
        await app.start()
        if settings.telegram_webhook_url:
            await self._start_webhook()
        else:
            await self.poller.start()
        self._started = True
        log.info(
            "telegram bot @%s running (%s), gateway %s",
            app.bot.username, "webhook" if self._webhook else "polling", settings.gateway_url,
        )  # fmt: skip

    async def _set_commands(self) -> None:
        """The command menu in English, and in each language the catalogue has (Telegram picks by language_code)."""
        bot = self.application.bot
        await bot.set_my_commands(commands(None))
        for lang in texts.languages():
            if lang != texts.DEFAULT_LANGUAGE:
                await bot.set_my_commands(commands(lang), language_code=lang)

    async def stop(self) -> None:
        app = self.application
        await self.poller.stop()
        if self._webhook is not None:
            await self._webhook.cleanup()
            self._webhook = None
        await self.handlers.albums.close()
        if app.running:
            await app.stop()
        await app.shutdown()
        await self.health.stop()

    async def wait_stopped(self) -> None:
        """Returns when polling ended by itself (a refused token); raises that failure."""
        if self.settings.telegram_webhook_url:
            await asyncio.Event().wait()
        await self.poller.stopped.wait()
        if self.poller.failure is not None:
            raise self.poller.failure

    # --- webhook mode ---------------------------------------------------------------------------------

    @property
    def webhook_path(self) -> str:
        return urlsplit(self.settings.telegram_webhook_url or "").path or "/"

    async def _start_webhook(self) -> None:
        settings = self.settings
        assert settings.telegram_webhook_secret is not None
        server = web.Application()
        server.router.add_post(self.webhook_path, self._on_webhook)
        self._webhook = web.AppRunner(server, access_log=None)
        await self._webhook.setup()
        await web.TCPSite(self._webhook, settings.telegram_webhook_host, settings.telegram_webhook_port).start()
        await self.application.bot.set_webhook(
            url=settings.telegram_webhook_url or "",
            secret_token=settings.telegram_webhook_secret.get_secret_value(),
            allowed_updates=Update.ALL_TYPES,
        )

    async def _on_webhook(self, request: web.Request) -> web.Response:
        """Only Telegram knows the secret: anything else gets 403, compared in constant time. The answer
        comes once the update is handled, so Telegram sends it again if the bot dies meanwhile."""
        secret = self.settings.telegram_webhook_secret
        presented = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if secret is None or not hmac.compare_digest(presented.encode(), secret.get_secret_value().encode()):
            return web.Response(status=403, text="forbidden")
        try:
            update = Update.de_json(await request.json(), self.application.bot)
        except ValueError:
            return web.Response(status=400, text="bad update")
        await handle(self.application, self.ledger, update)
        return web.Response(text="ok")

    @property
    def webhook_port(self) -> int:
        """The bound port (useful when configured as 0)."""
        assert self._webhook is not None
        return int(self._webhook.addresses[0][1])
