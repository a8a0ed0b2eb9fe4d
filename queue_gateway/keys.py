"""Typed application keys: what the app's cleanup contexts put in, and the handlers take out."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from queue_gateway.auth import ApiKeys
from queue_gateway.events import JobEvents
from queue_gateway.intake import Intake
from queue_gateway.metrics import GatewayMetrics
from queue_gateway.notify.loop import DeliveryLoop
from queue_gateway.publisher import BrokerLink
from queue_gateway.relay import OutboxRelay
from queue_gateway.retention import Retention
from queue_gateway.settings import GatewaySettings
from queue_gateway.signing import Signer

settings_key = web.AppKey("settings", GatewaySettings)
engine_key = web.AppKey("engine", AsyncEngine)
sessions_key = web.AppKey("sessions", async_sessionmaker[AsyncSession])
signer_key = web.AppKey("signer", Signer)
api_keys_key = web.AppKey("api_keys", ApiKeys)
link_key = web.AppKey("broker_link", BrokerLink)
intake_key = web.AppKey("intake", Intake)
relay_key = web.AppKey("relay", OutboxRelay)
events_key = web.AppKey("events", JobEvents)
delivery_key = web.AppKey("delivery", DeliveryLoop)
retention_key = web.AppKey("retention", Retention)
metrics_key = web.AppKey("metrics", GatewayMetrics)
