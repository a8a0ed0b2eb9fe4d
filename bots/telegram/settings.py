"""The Telegram bot's settings."""

from __future__ import annotations

from pydantic import SecretStr, model_validator

from bots.shared.settings import BotSettings
from queue_gateway.public.settings import TelegramConnection


class TelegramSettings(BotSettings, TelegramConnection):
    platform = "telegram"
    telegram_webhook_url: str | None = None  # public HTTPS URL; unset: long polling
    telegram_webhook_secret: SecretStr | None = None  # checked against X-Telegram-Bot-Api-Secret-Token
    telegram_webhook_host: str = "127.0.0.1"  # where our webhook server listens (behind your TLS proxy)
    telegram_webhook_port: int = 8081
    album_quiet_s: float = 1.0  # an album's photos arrive as separate updates; wait this long for the rest

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> TelegramSettings:
        if self.telegram_webhook_url and not self.telegram_webhook_secret:
            raise ValueError("DETECTBOT_TELEGRAM_WEBHOOK_SECRET is required with DETECTBOT_TELEGRAM_WEBHOOK_URL")
        return self
