"""What every bot's handlers need, built once per bot from its settings and one HTTP session."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from bots.shared.admin import AdminService
from bots.shared.client import GatewayClient
from bots.shared.service import DetectService
from bots.shared.settings import BotSettings


@dataclass(frozen=True, slots=True)
class BotServices:
    detect: DetectService
    admin: AdminService


def build_services(session: aiohttp.ClientSession, settings: BotSettings) -> BotServices:
    key = settings.api_key.get_secret_value() if settings.api_key else None
    admin_key = settings.admin_api_key.get_secret_value() if settings.admin_api_key else key
    client = GatewayClient(session, settings.gateway_url, key)
    admin_client = GatewayClient(session, settings.gateway_url, admin_key)
    return BotServices(DetectService(client, settings), AdminService(client, admin_client, settings))


def bot_secrets(settings: BotSettings) -> list[str]:
    """The gateway keys a bot holds, for the log redactor."""
    return [s.get_secret_value() for s in (settings.api_key, settings.admin_api_key) if s is not None]
