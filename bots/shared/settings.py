"""What every bot needs: the gateway (URL + API key), admins, and the download cap."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from queue_gateway.client_settings import GatewayClientSettings

MiB = 1024 * 1024


class BotSettings(GatewayClientSettings):
    admin_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list
    )  # numeric Telegram / Discord user ids; nobody else is admin
    admin_api_key: SecretStr | None = None  # a gateway admin key for /stats and /dlq (default: api_key)
    max_download_bytes: int = 20 * MiB  # Telegram's getFile cap; the gateway refuses more anyway

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(part) for part in value.replace(" ", "").split(",") if part]
        if isinstance(value, int):
            return [value]
        return value

    def is_admin(self, user_id: int | str | None) -> bool:
        try:
            return user_id is not None and int(user_id) in self.admin_ids
        except ValueError:
            return False
