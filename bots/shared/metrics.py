"""A bot's Prometheus metrics and its small HTTP endpoint: ``/healthz``, ``/readyz``, ``/metrics``."""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

log = logging.getLogger(__name__)


class BotMetrics:
    def __init__(self, platform: str) -> None:
        self.platform = platform
        self.registry = CollectorRegistry()
        r = self.registry
        self.updates = Counter("detectbot_bot_updates", "Updates or interactions received", ["kind"], registry=r)
        self.photos = Counter(
            "detectbot_bot_photos", "Photos handed to the gateway, by outcome", ["outcome"], registry=r
        )
        self.in_hand = Gauge("detectbot_bot_in_hand", "Updates being handled (not yet confirmed)", registry=r)


class HealthServer:
    """``/healthz`` (the process answers), ``/readyz`` (``ready()`` says why not) and ``/metrics``."""

    def __init__(self, metrics: BotMetrics, ready: Callable[[], str | None], *, host: str, port: int | None) -> None:
        self._metrics = metrics
        self._ready = ready
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        if self._port is None:
            return
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._scrape)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        self.port = int(self._runner.addresses[0][1])
        log.info("%s bot health and metrics on http://%s:%d", self._metrics.platform, self._host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        problem = self._ready()
        if problem:
            return web.json_response({"status": "not ready", "reason": problem}, status=503)
        return web.json_response({"status": "ready"})

    async def _scrape(self, _request: web.Request) -> web.Response:
        body = generate_latest(self._metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
