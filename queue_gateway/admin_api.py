"""Operations over HTTP: stats (+ chart), the dead-letter list and requeue, "forget me", and chat settings.

Each needs a bot key (a bot serves these for its admins, who it checks itself) or an admin key.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from db import chats, operations, stats
from db.common import Outcome, now
from queue_gateway import chart
from queue_gateway.appkeys import api_keys_key, database_key, intake_key, link_key, wakeups_key
from queue_gateway.auth import Role
from queue_gateway.errors import BadRequest, JobGone, JobNotFound, NotRequeueable
from queue_gateway.public.contract import ChatSettingsBody

M = TypeVar("M", bound=BaseModel)

routes = web.RouteTableDef()


async def overview(request: web.Request) -> dict[str, Any]:
    """The numbers behind /stats, the chart and the admin page."""
    found = await request.app[database_key].read(lambda session: stats.overview(session, now=now()))
    queue = await request.app[link_key].queue_stats()
    return {
        "window": {"since": found.since, "until": found.until},
        "jobs": {
            "received": found.events.get("received", 0),
            "done": found.events.get("done", 0),
            "delivered": found.events.get("delivered", 0),
            "failed": found.events.get("failed", 0),
            "dead": found.events.get("dead", 0),
            "by_platform": found.received_by_platform,
            "waiting_now": found.waiting,
        },
        "latency_s": found.latency,
        "queue": {"depth": queue[0], "consumers": queue[1]} if queue else None,
        "workers": found.workers,
        "dead_waiting": found.dead_waiting,
        "cache_hits": found.events.get("cache_hit", 0),
        "top_labels": [{"label": label, "count": n} for label, n in found.top_labels],
        "hourly": found.hourly,
    }


@routes.get("/v1/stats")
async def get_stats(request: web.Request) -> web.Response:
    """The last 24 h at a glance."""
    request.app[api_keys_key].caller(request, at_least=Role.BOT)
    return web.json_response(await overview(request))


@routes.get("/v1/stats/chart.png")
async def get_chart(request: web.Request) -> web.Response:
    """Jobs per hour and p95 latency as a PNG; drawn off the event loop."""
    request.app[api_keys_key].caller(request, at_least=Role.BOT)
    hourly = (await overview(request))["hourly"]
    png = await asyncio.get_running_loop().run_in_executor(None, chart.render, hourly)
    return web.Response(body=png, content_type="image/png")


@routes.get("/v1/dead-jobs")
async def list_dead(request: web.Request) -> web.Response:
    """Dead jobs, newest first, with their reasons."""
    request.app[api_keys_key].caller(request, at_least=Role.BOT)
    raw = request.query.get("limit", "20")
    if not (raw.isascii() and raw.isdigit()):
        raise BadRequest("limit must be a whole number from 1 to 100.", code="bad_limit")
    limit = max(1, min(int(raw), 100))
    found = await request.app[database_key].read(lambda session: operations.dead_jobs(session, limit=limit))
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
                for j in found
            ]
        }
    )


@routes.post("/v1/jobs/{job_id}/requeue")
async def requeue(request: web.Request) -> web.Response:
    """Give a dead or failed job another go."""
    request.app[api_keys_key].caller(request, at_least=Role.BOT)
    job_id = request.match_info["job_id"]
    outcome = await request.app[intake_key].requeue(job_id)
    if outcome is Outcome.NOT_FOUND:
        raise JobNotFound()
    if outcome is Outcome.GONE:
        raise JobGone("Its photo was already deleted, so it cannot run again.")
    if outcome is Outcome.REPEATED:
        raise NotRequeueable()
    request.app[wakeups_key].job_changed(job_id)
    return web.json_response({"job_id": job_id, "status": "received"}, status=202)


class ForgetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform: str = Field(min_length=1, max_length=16)
    user_id: str = Field(min_length=1, max_length=64)


@routes.post("/v1/forget")
async def forget(request: web.Request) -> web.Response:
    """Delete one person's images and results now (the bots call this for /forget)."""
    request.app[api_keys_key].caller(request, at_least=Role.BOT)
    body = await _body(request, ForgetBody, 'Send {"platform": "telegram", "user_id": "42"}.')
    user_ref = f"{body.platform}:{body.user_id}"
    count = await request.app[database_key].write(lambda session: operations.forget_user(session, user_ref))
    request.app[wakeups_key].delivery.set()
    return web.json_response({"forgotten": count})


@routes.get("/v1/chats/{platform}/{chat_id}/settings")
async def get_chat_settings(request: web.Request) -> web.Response:
    """What a chat chose with /settings (absent fields: the defaults)."""
    request.app[api_keys_key].caller(request, at_least=Role.BOT)
    platform, chat_id = _chat(request)
    found = await request.app[database_key].read(lambda session: chats.get_settings(session, platform, chat_id))
    return web.json_response(ChatSettingsBody.model_validate(found).model_dump(exclude_none=True))


@routes.patch("/v1/chats/{platform}/{chat_id}/settings")
async def patch_chat_settings(request: web.Request) -> web.Response:
    """Change some of a chat's settings; a field sent as null goes back to the default."""
    request.app[api_keys_key].caller(request, at_least=Role.BOT)
    platform, chat_id = _chat(request)
    body = await _body(request, ChatSettingsBody, 'Send {"conf": 0.6, "classes": ["person"]} or some of those.')
    changes = body.model_dump(exclude_unset=True)

    async def apply(session: AsyncSession) -> dict[str, Any]:
        return await chats.update_settings(session, platform, chat_id, changes)

    found = await request.app[database_key].write(apply)
    return web.json_response(ChatSettingsBody.model_validate(found).model_dump(exclude_none=True))


def _chat(request: web.Request) -> tuple[str, str]:
    platform, chat_id = request.match_info["platform"], request.match_info["chat_id"]
    if platform not in ("telegram", "discord") or not (1 <= len(chat_id) <= 64):
        raise BadRequest("Chats are /v1/chats/telegram/<id> or /v1/chats/discord/<id>.", code="bad_chat")
    return platform, chat_id


async def _body(request: web.Request, model: type[M], hint: str) -> M:
    try:
        return model.model_validate_json(await request.read() or b"{}")
    except ValidationError as exc:
        raise BadRequest(f"{hint} ({exc.errors()[0]['msg']})", code="bad_body") from None
