"""Settings every service shares: the ``DETECTBOT_`` prefix, the gateway's address, the queue, the chat platforms.

Each service owns its settings class, built on these, and builds it once in its ``main()``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from queue_gateway.public.topology import Topology

ENV_PREFIX = "DETECTBOT_"


class DetectbotSettings(BaseSettings):
    """The base of every service's settings: ``DETECTBOT_*`` variables, or lines of a ``.env`` file."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", env_ignore_empty=True)

    log_level: str = "INFO"  # DEBUG, INFO, WARNING, ERROR (also --log-level)
    log_format: Literal["text", "json"] = "text"  # json: one JSON object per line, with the job id
    tracing: Literal["off", "console", "otlp"] = "off"  # OpenTelemetry; otlp: OTEL_EXPORTER_OTLP_ENDPOINT


class GatewayAddress(DetectbotSettings):
    """Where the gateway is (workers reach it through signed links and need no key)."""

    gateway_url: str = "http://127.0.0.1:8080"


class GatewayClientSettings(GatewayAddress):
    """Where the gateway is and the API key to show it (bots, the CLI)."""

    api_key: SecretStr | None = None


class QueueSettings(DetectbotSettings):
    """The broker and the job queue: gateway and workers must agree on these (the queue is declared with them)."""

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    queue: str = Field(default="detectbot.jobs", pattern=r"^[A-Za-z0-9_.:-]{1,200}$")
    delivery_limit: int = Field(default=3, ge=1, le=100)  # deliveries of one job to workers before it is dead
    max_queue_length: int = Field(default=10_000, ge=1)  # broker-side backlog before new jobs get "busy"

    def topology(self) -> Topology:
        return Topology(self.queue, delivery_limit=self.delivery_limit, max_length=self.max_queue_length)


class TelegramConnection(DetectbotSettings):
    """How to reach Telegram: the bot receives with it, the gateway delivers with it."""

    telegram_token: SecretStr | None = None
    # PTB appends the token: "{api_url}{token}/{method}"; point these at a local Bot API server if you run one
    telegram_api_url: str = "https://api.telegram.org/bot"
    telegram_file_url: str = "https://api.telegram.org/file/bot"


class DiscordConnection(DetectbotSettings):
    """How to reach Discord: the bot's REST base and websocket; the gateway delivers over the same REST base."""

    discord_token: SecretStr | None = None
    discord_api_url: str = "https://discord.com/api/v10"  # REST, interaction callbacks and webhooks
    discord_gateway_url: str = "wss://gateway.discord.gg/"  # the bot's websocket


def safe_url(url: str) -> str:
    """A URL without its password, for logs and messages."""
    from yarl import URL

    parsed = URL(url)
    return str(parsed.with_password(None)) if parsed.password else url


def settings_problem(exc: ValidationError) -> str:
    """One line per bad setting, naming its environment variable: ``DETECTBOT_PORT: …``."""
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "settings"
        name = f"{ENV_PREFIX}{field.upper()}" if error["loc"] else "settings"
        got = error.get("input")
        shown = "" if got is None or isinstance(got, dict) or _secret_like(field) else f" (got {str(got)[:60]!r})"
        lines.append(f"{name}: {error['msg']}{shown}")
    return "; ".join(lines)


def _secret_like(field: str) -> bool:
    return any(word in field for word in ("token", "key", "secret", "password", "url"))


def secret_values(settings: BaseSettings) -> list[str]:
    """The plain values of every secret a settings object holds (``SecretStr`` fields, alone or in lists), and the
    bare key of each ``role:KEY`` entry, which is what a request presents."""
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        for item in value if isinstance(value, list | tuple) else [value]:
            if isinstance(item, SecretStr):
                secret = item.get_secret_value()
                found.append(secret)
                found.append(secret.partition(":")[2].strip())
    return [secret for secret in found if secret]
