"""Settings services share beyond the process basics (``queue_gateway.runtime.config``): the gateway's address and
key, the queue, the chat platforms.

Each service owns its settings class, built on these, and builds it once in its ``main()``.
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from queue_gateway.public.topology import Topology
from queue_gateway.runtime.config import DetectbotSettings


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
