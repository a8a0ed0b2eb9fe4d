"""``/healthz`` (the process answers) and ``/readyz`` (database and broker reachable)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from queue_gateway.keys import link_key, metrics_key, sessions_key

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        async with request.app[sessions_key]() as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready"; the reason goes in the body
        checks["database"] = f"error: {type(exc).__name__}"
    checks["broker"] = "ok" if request.app[link_key].is_ready else "error: not connected"
    ready = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503
    )


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition; the gauges are refreshed from the database and the broker on each scrape."""
    registry = request.app[metrics_key]
    async with request.app[sessions_key]() as session:
        rows = await session.execute(text("SELECT status, COUNT(*) FROM jobs GROUP BY status"))
        counts: dict[str, int] = {str(status): int(n) for status, n in rows}
    for status in ("received", "queued", "processing", "done", "delivered", "failed", "dead"):
        registry.jobs.labels(status=status).set(counts.get(status, 0))
    queue = await request.app[link_key].queue_stats()
    if queue is not None:
        registry.queue_depth.set(queue[0])
        registry.queue_consumers.set(queue[1])
    return web.Response(body=registry.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
