"""What every bot needs: the gateway (URL + API key), admins, the download cap, retries and its health port."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from queue_gateway.public.settings import GatewayClientSettings

MiB = 1024 * 1024


class BotSettings(GatewayClientSettings):
    platform: ClassVar[str | None] = None  # the bot's platform: its admins are that platform's ids

    # numeric Telegram / Discord user ids allowed /stats and /dlq (bare, or telegram:ID / discord:ID; the gateway
    # tells them when no worker runs); nobody else is an admin
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    max_download_bytes: int = 20 * MiB  # Telegram's getFile cap; the gateway refuses more anyway
    gateway_retry_s: float = Field(default=120.0, ge=0)  # keep a photo and retry this long while the gateway is away
    data_dir: Path = Path(".detectbot")  # where a bot keeps the requests it has not handed over yet
    http_host: str = "127.0.0.1"
    http_port: int | None = None  # serve /healthz, /readyz, /metrics here (0: any free port); None: off

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            ids = []
            for part in value.replace(" ", "").split(","):
                platform, _, user_id = part.rpartition(":")
                if part and platform in ("", cls.platform or platform):
                    ids.append(int(user_id))
            return ids
        if isinstance(value, int):
            return [value]
        return value

    def is_admin(self, user_id: int | str | None) -> bool:
        try:
            return user_id is not None and int(user_id) in self.admin_ids
        except ValueError:
            return False
