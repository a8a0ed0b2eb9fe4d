"""Prometheus metrics of one worker process, in its own registry, and its small HTTP endpoint."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs = Counter("detectbot_worker_jobs", "Jobs handled, by outcome", ["outcome"], registry=r)
        self.inference_seconds = Histogram(
            "detectbot_worker_inference_seconds",
            "Model time per image",
            buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30),
            registry=r,
        )
        self.in_flight = Gauge("detectbot_worker_in_flight", "Jobs in hand", registry=r)
        self.model = Info("detectbot_worker_model", "The model this worker runs", registry=r)
        for outcome in ("done", "failed", "timeout", "crashed"):  # from the start, so increase() sees the first
            self.jobs.labels(outcome=outcome)


def health_app(metrics: WorkerMetrics, ready: Callable[[], str | None]) -> web.Application:
    """``/healthz``, ``/readyz`` (model warm and consuming) and ``/metrics``; ``ready()`` says why not."""

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        problem = ready()
        if problem:
            return web.json_response({"status": "not ready", "reason": problem}, status=503)
        return web.json_response({"status": "ready"})

    async def scrape(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", scrape)
    return app
