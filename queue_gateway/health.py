"""``/healthz`` (the process answers), ``/readyz`` (database, broker and every background task) and ``/metrics``."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from db import jobs
from queue_gateway.appkeys import api_keys_key, database_key, link_key, metrics_key, supervisor_key
from queue_gateway.auth import ApiKeys, Role
from queue_gateway.endpoints import Endpoints, answer
from queue_gateway.errors import GatewayError
from queue_gateway.public.contract import Health, Readiness

endpoints = Endpoints()


@endpoints.get("/healthz", auth="public", ok={200: Health}, database=False)
async def healthz(_request: web.Request) -> web.Response:
    """The process answers."""
    return answer(Health(status="ok"))


@endpoints.get("/readyz", auth="public", ok={200: Readiness, 503: Readiness}, database=False)
async def readyz(request: web.Request) -> web.Response:
    """503 while the database or the broker is unreachable, or a background task is down; with an admin key the
    body says which (to anyone else, only whether it is ready: error details are for the people who run it)."""
    checks: dict[str, str] = {}
    try:
        await request.app[database_key].read(jobs.ping, retry_s=0)
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready"; the reason goes in the body
        checks["database"] = f"error: {type(exc.__cause__ or exc).__name__}"
    checks["broker"] = "ok" if request.app[link_key].is_ready else "error: not connected"
    for task, problem in request.app[supervisor_key].problems().items():
        checks[f"task {task}"] = f"error: {problem}"
    ready = all(v == "ok" for v in checks.values())
    body = Readiness(status="ready" if ready else "not ready", checks=checks if _is_admin(request) else None)
    return answer(body, status=200 if ready else 503)


def _is_admin(request: web.Request) -> bool:
    if not ApiKeys.presented(request):
        return False
    try:
        request.app[api_keys_key].caller(request, at_least=Role.ADMIN)
    except GatewayError:
        return False
    return True


@endpoints.get("/metrics", auth="public", ok={200: "text/plain"}, database=False)
async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition; the gauges are refreshed from the database and the broker on each scrape (it answers
    while either is away: ``detectbot_database_up`` / ``detectbot_broker_up`` say so)."""
    registry = request.app[metrics_key]
    try:
        counts = await request.app[database_key].read(jobs.count_by_status, retry_s=0)
    except Exception:  # the scrape still answers, so an alert can tell "database away" from "gateway away"
        registry.database_up.set(0)
    else:
        registry.database_up.set(1)
        for status in ("received", "queued", "processing", "done", "delivered", "failed", "dead", "cancelled"):
            registry.jobs.labels(status=status).set(counts.get(status, 0))
    registry.broker_up.set(1 if request.app[link_key].is_ready else 0)
    queue = await request.app[link_key].queue_stats()
    if queue is not None:
        registry.queue_depth.set(queue[0])
        registry.queue_consumers.set(queue[1])
    for task, restarts in request.app[supervisor_key].restarts().items():
        registry.task_restarts.labels(task=task).set(restarts)
    return web.Response(body=registry.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
