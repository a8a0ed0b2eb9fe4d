"""How to reach the chat platforms: shared by the bots (which receive) and the gateway (which delivers).

A leaf module: it imports nothing of ours but the client settings' prefix.
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from queue_gateway.client_settings import ENV_PREFIX


class TelegramConnection(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")

    telegram_token: SecretStr | None = None
    # PTB appends the token: "{api_url}{token}/{method}"; point these at a local Bot API server if you run one
    telegram_api_url: str = "https://api.telegram.org/bot"
    telegram_file_url: str = "https://api.telegram.org/file/bot"


class DiscordConnection(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")

    discord_token: SecretStr | None = None
    discord_api_url: str = "https://discord.com/api/v10"  # REST, interaction callbacks and webhooks
    discord_gateway_url: str = "wss://gateway.discord.gg/"  # the bot's websocket
