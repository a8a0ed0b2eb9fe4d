"""Operations over HTTP: stats (+ chart), the dead-letter list and requeue, and "forget me"."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from db import operations, queries, stats
from db.queries import Outcome
from queue_gateway import chart
from queue_gateway.errors import ApiError
from queue_gateway.keys import api_keys_key, events_key, intake_key, link_key, sessions_key

routes = web.RouteTableDef()


async def _overview(request: web.Request) -> dict[str, Any]:
    async with request.app[sessions_key]() as session:
        overview = await stats.overview(session, now=queries.now())
    queue = await request.app[link_key].queue_stats()
    return {
        "window": {"since": overview.since, "until": overview.until},
        "jobs": {
            "received": overview.events.get("received", 0),
            "done": overview.events.get("done", 0),
            "delivered": overview.events.get("delivered", 0),
            "failed": overview.events.get("failed", 0),
            "dead": overview.events.get("dead", 0),
            "by_platform": overview.received_by_platform,
            "waiting_now": overview.waiting,
        },
        "latency_s": overview.latency,
        "queue": {"depth": queue[0], "consumers": queue[1]} if queue else None,
        "workers": overview.workers,
        "dead_waiting": overview.dead_waiting,
        "cache_hits": overview.events.get("cache_hit", 0),
        "top_labels": [{"label": label, "count": n} for label, n in overview.top_labels],
        "hourly": overview.hourly,
    }


@routes.get("/v1/stats")
async def get_stats(request: web.Request) -> web.Response:
    """The last 24 h at a glance (admin key)."""
    request.app[api_keys_key].check(request, admin=True)
    return web.json_response(await _overview(request))


@routes.get("/v1/stats/chart.png")
async def get_chart(request: web.Request) -> web.Response:
    """Jobs per hour and p95 latency as a PNG (admin key); drawn off the event loop."""
    request.app[api_keys_key].check(request, admin=True)
    hourly = (await _overview(request))["hourly"]
    png = await asyncio.get_running_loop().run_in_executor(None, chart.render, hourly)
    return web.Response(body=png, content_type="image/png")


@routes.get("/v1/dead-jobs")
async def list_dead(request: web.Request) -> web.Response:
    """Dead jobs, newest first, with their reasons (admin key)."""
    request.app[api_keys_key].check(request, admin=True)
    limit = max(1, min(int(request.query.get("limit", "20") or 20), 100))
    async with request.app[sessions_key]() as session:
        jobs = await operations.dead_jobs(session, limit=limit)
    return web.json_response(
        {
            "jobs": [
                {
                    "job_id": j.id,
                    "platform": j.platform,
                    "reason": j.error,
                    "attempts": j.attempts,
                    "dead_at": j.dead_at,
                }
                for j in jobs
            ]
        }
    )


@routes.post("/v1/jobs/{job_id}/requeue")
async def requeue(request: web.Request) -> web.Response:
    """Give a dead or failed job another go (admin key)."""
    request.app[api_keys_key].check(request, admin=True)
    job_id = request.match_info["job_id"]
    outcome = await request.app[intake_key].requeue(job_id)
    if outcome is Outcome.NOT_FOUND:
        raise ApiError(404, "not_found", "There is no such job.")
    if outcome is Outcome.GONE:
        raise ApiError(410, "purged", "Its photo was already deleted, so it cannot run again.")
    if outcome is Outcome.REPEATED:
        raise ApiError(409, "not_dead", "Only dead or failed jobs can be requeued.")
    return web.json_response({"job_id": job_id, "status": "received"}, status=202)


@routes.post("/v1/forget")
async def forget(request: web.Request) -> web.Response:
    """Delete one person's images and results now (the bots call this for /forget)."""
    request.app[api_keys_key].check(request)
    try:
        body = await request.json()
        user_ref = f"{body['platform']}:{body['user_id']}"
    except (ValueError, KeyError, TypeError):
        raise ApiError(400, "bad_body", 'Send {"platform": "telegram", "user_id": "42"}.') from None
    async with request.app[sessions_key].begin() as session:
        count = await operations.forget_user(session, user_ref)
    request.app[events_key].finished.set()
    return web.json_response({"forgotten": count})
