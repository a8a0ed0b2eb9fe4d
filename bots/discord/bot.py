"""The Discord bot's composition root: ``DiscordBot(settings)`` builds the client; ``start()``/``stop()`` run it
(tests drive the same two calls).

discord.py reads its REST base (``discord.http.Route.BASE``, which also governs interaction callbacks and
webhooks) and its websocket URL (``DiscordWebSocket.DEFAULT_GATEWAY``) from class attributes, so they are
process-global: ``start()`` sets them from the settings and ``stop()`` puts back what was there. A gateway that
delivers to Discord from the same process uses the same ``Route.BASE`` — configure both with the same URL.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bots.discord.admin import AdminCommands
from bots.discord.commands import CommandSet, DetectCommands
from bots.discord.settings import DiscordSettings
from bots.shared.services import bot_secrets, build_services
from queue_gateway import redact

log = logging.getLogger(__name__)


def command_sets(settings: DiscordSettings) -> list[CommandSet]:
    """Every command the bot offers."""
    return [DetectCommands(settings), AdminCommands()]


class DetectClient(discord.Client):
    """A plain ``Client`` (no privileged intents) with a command tree; its HTTP resources live from
    ``setup_hook`` (called by ``login``) until ``close``."""

    def __init__(self, settings: DiscordSettings, commands: list[CommandSet]) -> None:
        intents = discord.Intents(guilds=True)  # enough for slash commands and message menus; nothing privileged
        super().__init__(intents=intents, guild_ready_timeout=settings.discord_guild_ready_timeout)
        self.settings = settings
        self.commands = commands
        self.tree: app_commands.CommandTree[DetectClient] = app_commands.CommandTree(self)
        self._http_session: aiohttp.ClientSession | None = None

    async def setup_hook(self) -> None:
        settings = self.settings
        self._http_session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        services = build_services(self._http_session, settings)
        for commands in self.commands:
            commands.bind(services)
            commands.register(self.tree)
        await self._sync_commands()

    async def _sync_commands(self) -> None:
        guild_id = self.settings.discord_guild_id
        if guild_id is None:
            synced = await self.tree.sync()
        else:  # guild commands show up at once; global ones can take a while to reach every client
            guild = discord.Object(guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
        scope = f"guild {guild_id}" if guild_id else "global"
        log.info("synced %d Discord commands (%s): %s", len(synced), scope, ", ".join(c.name for c in synced))

    async def close(self) -> None:
        await super().close()
        if self._http_session is not None:
            await self._http_session.close()
            self._http_session = None


class DiscordBot:
    def __init__(self, settings: DiscordSettings) -> None:
        if settings.discord_token is None:
            raise ValueError("set DETECTBOT_DISCORD_TOKEN to the bot token from the Discord developer portal")
        self._token = settings.discord_token.get_secret_value()
        redact.install([self._token, *bot_secrets(settings)])
        self.settings = settings
        self.client: DetectClient | None = None
        self._runner: asyncio.Task[None] | None = None
        self._replaced: tuple[str, yarl.URL] | None = None

    async def start(self) -> None:
        """Log in, sync the commands, connect the websocket; return once Discord says the bot is ready."""
        self._point_discord_py()
        client = self.client = DetectClient(self.settings, command_sets(self.settings))
        try:
            await client.login(self._token)
        except BaseException:
            await self.stop()
            raise
        runner = self._runner = asyncio.create_task(client.connect(), name="discord-gateway")
        ready = asyncio.create_task(client.wait_until_ready())
        timeout = self.settings.discord_start_timeout_s
        done, _ = await asyncio.wait({runner, ready}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            failure: BaseException = TimeoutError(f"Discord did not report ready within {timeout:g} s")
            if runner.done():
                ended = None if runner.cancelled() else runner.exception()
                failure = ended or RuntimeError("the Discord connection ended before the bot was ready")
            await self.stop()
            raise failure
        log.info("discord bot %s running (application %s)", client.user, client.application_id)

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self._runner is not None:
            try:
                await asyncio.wait_for(self._runner, 10)
            except Exception:
                log.exception("the Discord connection did not end cleanly")
            self._runner = None
        self.client = None
        self._restore_discord_py()

    def _point_discord_py(self) -> None:
        if self._replaced is None:
            self._replaced = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
        Route.BASE = self.settings.discord_api_url.rstrip("/")
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.settings.discord_gateway_url)

    def _restore_discord_py(self) -> None:
        if self._replaced is not None:
            Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = self._replaced
            self._replaced = None
