"""The Discord bot's settings. The application id is not configured: it is read from Discord at start."""

from __future__ import annotations

from bots.shared.settings import BotSettings
from queue_gateway.public.settings import DiscordConnection


class DiscordSettings(BotSettings, DiscordConnection):
    platform = "discord"
    discord_guild_id: int | None = None  # sync the commands to this guild only (instant); unset: globally
    discord_guild_ready_timeout: float = 2.0  # how long discord.py waits for guilds after READY (tests lower it)
    discord_start_timeout_s: float = 60.0  # start() gives up when the client is not ready by then
