"""Settings every gateway client shares (worker, bots, CLI). A leaf module: imports nothing of ours."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "DETECTBOT_"


class GatewayClientSettings(BaseSettings):
    """Where the gateway is and the API key to show it."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")

    gateway_url: str = "http://127.0.0.1:8080"
    api_key: SecretStr | None = None
