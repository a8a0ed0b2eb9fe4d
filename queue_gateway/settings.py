"""The gateway's settings: one validated object, built in ``main()`` and passed down."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from db.engine import sqlite_url
from queue_gateway.client_settings import ENV_PREFIX
from queue_gateway.platform_settings import DiscordConnection, TelegramConnection

MiB = 1024 * 1024


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class GatewaySettings(TelegramConnection, DiscordConnection, BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")

    data_dir: Path = Path(".detectbot")
    database_url: str = ""  # empty: SQLite under data_dir
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    queue: str = Field(default="detectbot.jobs", pattern=r"^[A-Za-z0-9_.:-]{1,200}$")
    host: str = "127.0.0.1"
    port: int = 8080

    api_keys: Annotated[list[SecretStr], NoDecode] = []
    admin_api_keys: Annotated[list[SecretStr], NoDecode] = []
    signing_secret: SecretStr | None = None  # empty: generated once and kept in data_dir

    max_upload_bytes: int = 20 * MiB  # Telegram's getFile limit; bigger photos are rare and slow
    max_pixels: int = 25_000_000  # 25 MP: a 6000x4000 camera photo; beyond that is a decompression bomb
    max_queue_length: int = 10_000  # broker-side backlog before new jobs get "busy, try again"
    busy_retry_after_s: int = 30
    delivery_limit: int = 3  # deliveries of one job to workers before it is dead-lettered
    signed_url_ttl_s: int = 7 * 24 * 3600
    publish_timeout_s: float = 10.0
    relay_interval_s: float = 2.0  # how often the outbox relay looks for jobs a crash left unpublished
    relay_grace_s: float = 5.0  # how old an outbox entry must be before the relay takes it over
    auto_migrate: bool = True
    retention_days: float = 7.0  # photos and results are deleted after this; job rows stay for stats
    retention_check_s: float = 3600.0
    result_cache: bool = True  # the same photo with the same parameters again: reuse the stored result

    delivery_concurrency: int = 8  # chats served at once; one chat is always served in order
    delivery_max_attempts: int = 12  # then the chat is given up on (the result stays available over HTTP)
    chat_min_interval_s: float = 1.0  # Telegram allows about one message per second per chat

    @field_validator("api_keys", "admin_api_keys", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split(value)

    @model_validator(mode="after")
    def _defaults(self) -> GatewaySettings:
        if not self.database_url:
            self.database_url = sqlite_url(self.data_dir)
        return self

    def signing_key(self) -> bytes:
        """The HMAC key; generated once into the data directory when none is configured."""
        if self.signing_secret is not None:
            return self.signing_secret.get_secret_value().encode()
        path = self.data_dir / "signing.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(secrets.token_urlsafe(32))
            tmp.chmod(0o600)
            tmp.replace(path)
        return path.read_text().strip().encode()
