"""The Telegram bot's composition root: ``TelegramBot(settings)`` builds the Application and its resources;
``start()``/``stop()`` run it (tests drive the same two calls)."""

from __future__ import annotations

import hmac
import logging
import os
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from telegram import BotCommand, Update
from telegram.ext import Application

from bots.shared.services import bot_secrets, build_services
from bots.telegram.handlers import Handlers
from bots.telegram.settings import TelegramSettings
from queue_gateway import redact

log = logging.getLogger(__name__)

COMMANDS = [
    BotCommand("detect", "Find objects in a photo (reply to it in groups)"),
    BotCommand("help", "What this bot does"),
    BotCommand("forget", "Delete my photos and results now"),
]


class TelegramBot:
    def __init__(self, settings: TelegramSettings) -> None:
        if settings.telegram_token is None:
            raise ValueError("set DETECTBOT_TELEGRAM_TOKEN to the token @BotFather gave you")
        os.environ.setdefault("PTB_TIMEDELTA", "true")  # python-telegram-bot: retry_after as a timedelta
        token = settings.telegram_token.get_secret_value()
        redact.install([token, *bot_secrets(settings)])
        self.settings = settings
        self.handlers = Handlers(settings)
        builder = (
            Application.builder()
            .token(token)
            .base_url(settings.telegram_api_url)
            .base_file_url(settings.telegram_file_url)
            .concurrent_updates(True)
        )
        if settings.telegram_webhook_url:
            builder = builder.updater(None)
        self.application = builder.build()
        self.handlers.register(self.application)
        self._http: aiohttp.ClientSession | None = None
        self._webhook: web.AppRunner | None = None

    async def start(self) -> None:
        settings = self.settings
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        services = build_services(self._http, settings)
        self.handlers.service, self.handlers.admin = services.detect, services.admin
        app = self.application
        await app.initialize()
        self.handlers.username = app.bot.username
        await app.bot.set_my_commands(COMMANDS)
        await app.start()
        if settings.telegram_webhook_url:
            await self._start_webhook()
        else:
            assert app.updater is not None
            await app.updater.start_polling(allowed_updates=Update.ALL_TYPES, poll_interval=0.0, timeout=10)
        log.info("telegram bot @%s running (%s)", app.bot.username, "webhook" if self._webhook else "polling")

    async def stop(self) -> None:
        app = self.application
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if self._webhook is not None:
            await self._webhook.cleanup()
            self._webhook = None
        await self.handlers.albums.close()
        if app.running:
            await app.stop()
        await app.shutdown()
        if self._http is not None:
            await self._http.close()

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
        """Only Telegram knows the secret: anything else gets 403, compared in constant time."""
        secret = self.settings.telegram_webhook_secret
        presented = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if secret is None or not hmac.compare_digest(presented.encode(), secret.get_secret_value().encode()):
            return web.Response(status=403, text="forbidden")
        try:
            update = Update.de_json(await request.json(), self.application.bot)
        except ValueError:
            return web.Response(status=400, text="bad update")
        await self.application.update_queue.put(update)
        return web.Response(text="ok")

    @property
    def webhook_port(self) -> int:
        """The bound port (useful when configured as 0)."""
        assert self._webhook is not None
        return int(self._webhook.addresses[0][1])
