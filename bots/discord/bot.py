"""The Discord bot: ``DiscordBot(settings, services, http)`` builds the client and its commands around the shared
services; ``start()``/``stop()`` run it (tests drive the same two calls, ``main()`` runs them under the signal
runner). As in discord.py's ``advanced_startup`` example, resources come in through the constructors and the
async set-up (command sync) happens in ``setup_hook``.

discord.py reads its REST base and its websocket URL from class attributes, so they are process-global: they are
set once per process by :func:`queue_gateway.runtime.process.use_discord`.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import discord
from discord import app_commands

from bots.discord.admin import AdminCommands
from bots.discord.commands import CancelButton, CatalogueTranslator, DetectCommands, ObjectsButton, RerunPick
from bots.discord.settings import DiscordSettings
from bots.shared.metrics import HealthServer
from bots.shared.services import BotServices
from queue_gateway.runtime import process, redact
from queue_gateway.runtime.config import secret_values
from queue_gateway.runtime.errors import CannotStart

log = logging.getLogger(__name__)


class DetectClient(discord.Client):
    """A plain ``Client`` (no privileged intents) with a command tree; commands are synced in ``setup_hook``."""

    def __init__(self, settings: DiscordSettings, services: BotServices, http: aiohttp.ClientSession) -> None:
        intents = discord.Intents(guilds=True)  # enough for slash commands and message menus; nothing privileged
        super().__init__(intents=intents, guild_ready_timeout=settings.discord_guild_ready_timeout)
        self.settings = settings
        self.services = services
        self.tree: app_commands.CommandTree[DetectClient] = app_commands.CommandTree(self)
        self.detect_commands = DetectCommands(settings, services, http)
        self.detect_commands.register(self.tree)
        AdminCommands(services).register(self.tree)

    async def setup_hook(self) -> None:
        self.add_dynamic_items(CancelButton, ObjectsButton, RerunPick)
        await self.tree.set_translator(CatalogueTranslator())
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


class DiscordBot:
    def __init__(self, settings: DiscordSettings, services: BotServices, http: aiohttp.ClientSession) -> None:
        if settings.discord_token is None:
            raise CannotStart("set DETECTBOT_DISCORD_TOKEN to the bot token from the Discord developer portal")
        process.use_discord(settings.discord_api_url, settings.discord_gateway_url)
        redact.install(secret_values(settings))
        self._token = settings.discord_token.get_secret_value()
        self.settings = settings
        self.services = services
        self.client = DetectClient(settings, services, http)
        self.health = HealthServer(services.metrics, self.readiness, host=settings.http_host, port=settings.http_port)
        self._runner: asyncio.Task[None] | None = None

    def readiness(self) -> str | None:
        if not self.client.is_ready():
            return "not connected to Discord"
        return None

    async def start(self) -> None:
        """Log in, sync the commands, connect the websocket; return once Discord says the bot is ready."""
        await self.health.start()
        client = self.client
        try:
            await client.login(self._token)
        except discord.LoginFailure as exc:
            raise CannotStart("Discord refused the bot token (check DETECTBOT_DISCORD_TOKEN)") from exc
        except (discord.HTTPException, aiohttp.ClientError) as exc:
            raise CannotStart(f"cannot reach Discord at {self.settings.discord_api_url}: {exc}") from exc
        runner = self._runner = asyncio.create_task(client.connect(), name="discord-gateway")
        ready = asyncio.create_task(client.wait_until_ready())
        timeout = self.settings.discord_start_timeout_s
        done, _ = await asyncio.wait({runner, ready}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            failure: BaseException = CannotStart(f"Discord did not report ready within {timeout:g} s")
            if runner.done():
                ended = None if runner.cancelled() else runner.exception()
                failure = ended or CannotStart("the Discord connection ended before the bot was ready")
            raise failure
        await client.detect_commands.replay()
        log.info(
            "discord bot %s running (application %s), gateway %s",
            client.user, client.application_id, self.settings.gateway_url,
        )  # fmt: skip

    async def stop(self) -> None:
        if not self.client.is_closed():
            await self.client.close()
        if self._runner is not None:
            try:
                await asyncio.wait_for(self._runner, 10)
            except Exception:
                log.exception("the Discord connection did not end cleanly")
            self._runner = None
        await self.health.stop()

    async def wait_stopped(self) -> None:
        """Returns when the Discord connection ended by itself; raises its error."""
        if self._runner is None:
            await asyncio.Event().wait()
        assert self._runner is not None
        await asyncio.shield(self._runner)
