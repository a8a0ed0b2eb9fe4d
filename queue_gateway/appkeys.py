"""Typed application keys: what ``create_app`` and its cleanup contexts put in, and the handlers take out."""

from __future__ import annotations

from aiohttp import web

from queue_gateway.auth import ApiKeys
from queue_gateway.blobs import RecentResults
from queue_gateway.crops import Cutter
from queue_gateway.database import Database
from queue_gateway.endpoints import Endpoint
from queue_gateway.intake import Intake
from queue_gateway.longpoll import LongPolls
from queue_gateway.metrics import GatewayMetrics
from queue_gateway.notify.loop import DeliveryLoop
from queue_gateway.pace import Pace
from queue_gateway.publisher import BrokerLink
from queue_gateway.retention import Retention
from queue_gateway.runtime.supervise import Supervisor
from queue_gateway.settings import GatewaySettings
from queue_gateway.signing import Signer
from queue_gateway.wakeups import Wakeups
from queue_gateway.worker_sightings import Sightings
from queue_gateway.worker_watch import WorkerWatch

settings_key = web.AppKey("settings", GatewaySettings)
database_key = web.AppKey("database", Database)
cutter_key = web.AppKey("cutter", Cutter)
recent_results_key = web.AppKey("recent_results", RecentResults)
signer_key = web.AppKey("signer", Signer)
api_keys_key = web.AppKey("api_keys", ApiKeys)
link_key = web.AppKey("broker_link", BrokerLink)
intake_key = web.AppKey("intake", Intake)
longpolls_key = web.AppKey("longpolls", LongPolls)
wakeups_key = web.AppKey("wakeups", Wakeups)
retention_key = web.AppKey("retention", Retention)
delivery_key = web.AppKey("delivery", DeliveryLoop)
metrics_key = web.AppKey("metrics", GatewayMetrics)
pace_key = web.AppKey("pace", Pace)
sightings_key = web.AppKey("sightings", Sightings)
worker_watch_key = web.AppKey("worker_watch", WorkerWatch)
supervisor_key = web.AppKey("supervisor", Supervisor)
endpoints_key = web.AppKey("endpoints", list[Endpoint])  # every route with what it takes and answers (OpenAPI)
