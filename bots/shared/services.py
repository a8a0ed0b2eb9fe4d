"""What every bot's handlers need, built once per bot from its settings and one HTTP session."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from bots.shared.admin import AdminService
from bots.shared.chat_settings import ChatSettingsService
from bots.shared.detect import DetectService
from bots.shared.metrics import BotMetrics
from bots.shared.settings import BotSettings
from queue_gateway.public.client import GatewayClient


@dataclass(frozen=True, slots=True)
class BotServices:
    detect: DetectService
    admin: AdminService
    chats: ChatSettingsService
    metrics: BotMetrics


def build_services(session: aiohttp.ClientSession, settings: BotSettings, *, platform: str) -> BotServices:
    key = settings.api_key.get_secret_value() if settings.api_key else None
    client = GatewayClient(session, settings.gateway_url, key)
    return BotServices(
        DetectService(client, settings),
        AdminService(client, settings),
        ChatSettingsService(client),
        BotMetrics(platform),
    )
