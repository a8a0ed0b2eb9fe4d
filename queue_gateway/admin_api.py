"""Operations over HTTP: stats (+ chart), the dead-letter list and requeue, "forget me", and chat settings.

Each needs a bot key (a bot serves these for its admins, who it checks itself) or an admin key.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from db import chats, jobs, operations, stats
from db.common import Outcome, now
from queue_gateway import chart
from queue_gateway.appkeys import api_keys_key, database_key, intake_key, link_key, wakeups_key
from queue_gateway.auth import Role
from queue_gateway.errors import BadRequest, Forbidden, JobGone, JobNotFound, NotRequeueable
from queue_gateway.public.contract import ChatSettingsBody, Id

M = TypeVar("M", bound=BaseModel)

routes = web.RouteTableDef()

ID = re.compile(r"[0-9A-Za-z_.-]{1,64}")  # a platform's chat or user id (Telegram's may be negative)


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
    """Dead jobs, newest first, with their reasons (a bot key: only its own platform's)."""
    caller = request.app[api_keys_key].caller(request, at_least=Role.BOT)
    platforms = None if caller.role is Role.ADMIN else sorted(caller.platforms)
    raw = request.query.get("limit", "20")
    if not (raw.isascii() and raw.isdigit()):
        raise BadRequest("limit must be a whole number from 1 to 100.", code="bad_limit")
    limit = max(1, min(int(raw), 100))
    found = await request.app[database_key].read(
        lambda session: operations.dead_jobs(session, limit=limit, platforms=platforms)
    )
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
    """Give a dead or failed job another go (a bot key: only one of its own platform)."""
    caller = request.app[api_keys_key].caller(request, at_least=Role.BOT)
    job_id = request.match_info["job_id"]
    job = await request.app[database_key].read(lambda session: jobs.get_job(session, job_id))
    if job is None or not caller.may_see(job.owner, job.platform):
        raise JobNotFound()
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

    platform: Literal["telegram", "discord"]
    user_id: Id


@routes.post("/v1/forget")
async def forget(request: web.Request) -> web.Response:
    """Delete one person's images, results and own settings now (the bots call this for /forget)."""
    caller = request.app[api_keys_key].caller(request, at_least=Role.BOT)
    body = await _body(request, ForgetBody, 'Send {"platform": "telegram", "user_id": "42"}.')
    if not caller.acts_for(body.platform):
        raise Forbidden(f"This key may not act for {body.platform} users.")
    count = await request.app[database_key].write(
        lambda session: operations.forget_user(session, body.platform, body.user_id)
    )
    request.app[wakeups_key].delivery.set()
    return web.json_response({"forgotten": count})


@routes.get("/v1/chats/{platform}/{chat_id}/settings")
async def get_chat_settings(request: web.Request) -> web.Response:
    """What a chat chose with /settings (absent fields: the defaults)."""
    platform, chat_id = _chat(request)
    return await _get_settings(request, platform, chat_id)


@routes.patch("/v1/chats/{platform}/{chat_id}/settings")
async def patch_chat_settings(request: web.Request) -> web.Response:
    """Change some of a chat's settings; a field sent as null goes back to the default. The bot checks first
    that the person asking is an admin of that chat."""
    platform, chat_id = _chat(request)
    return await _patch_settings(request, platform, chat_id)


@routes.get("/v1/people/{platform}/{user_id}/settings")
async def get_person_settings(request: web.Request) -> web.Response:
    """A person's own settings (they win over the chat's, in every chat)."""
    platform, user_id = _chat(request, "user_id")
    return await _get_settings(request, platform, chats.person_scope(user_id))


@routes.patch("/v1/people/{platform}/{user_id}/settings")
async def patch_person_settings(request: web.Request) -> web.Response:
    """Change some of a person's own settings; a field sent as null goes back to the chat's (or the default)."""
    platform, user_id = _chat(request, "user_id")
    return await _patch_settings(request, platform, chats.person_scope(user_id))


async def _get_settings(request: web.Request, platform: str, key: str) -> web.Response:
    _acting_for(request, platform)
    found = await request.app[database_key].read(lambda session: chats.get_settings(session, platform, key))
    return web.json_response(ChatSettingsBody.model_validate(found).model_dump(exclude_none=True))


async def _patch_settings(request: web.Request, platform: str, key: str) -> web.Response:
    _acting_for(request, platform)
    body = await _body(request, ChatSettingsBody, 'Send {"conf": 0.6, "classes": ["person"]} or some of those.')
    changes = body.model_dump(exclude_unset=True)

    async def apply(session: AsyncSession) -> dict[str, Any]:
        return await chats.update_settings(session, platform, key, changes)

    found = await request.app[database_key].write(apply)
    return web.json_response(ChatSettingsBody.model_validate(found).model_dump(exclude_none=True))


def _acting_for(request: web.Request, platform: str) -> None:
    caller = request.app[api_keys_key].caller(request, at_least=Role.BOT)
    if not caller.acts_for(platform):
        raise Forbidden(f"This key may not act for {platform} chats.")


def _chat(request: web.Request, name: str = "chat_id") -> tuple[str, str]:
    platform, chat_id = request.match_info["platform"], request.match_info[name]
    if platform not in ("telegram", "discord") or not ID.fullmatch(chat_id):
        raise BadRequest(
            "Chats are /v1/chats/telegram/<id> or /v1/chats/discord/<id> (people: /v1/people/…).", code="bad_chat"
        )
    return platform, chat_id


async def _body(request: web.Request, model: type[M], hint: str) -> M:
    try:
        return model.model_validate_json(await request.read() or b"{}")
    except ValidationError as exc:
        raise BadRequest(f"{hint} ({exc.errors()[0]['msg']})", code="bad_body") from None
