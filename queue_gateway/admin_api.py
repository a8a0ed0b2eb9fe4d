"""Operations over HTTP: stats (+ chart), the dead-letter list and requeue, "forget me", and chat and person
settings.

Each needs a bot key (a bot serves these for its admins and its people, whom it checks itself, for its own
platform only) or an admin key. The sentences a bot shows (the stats, the dead list, "deleted 3 photos") come
rendered, in the asked language.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from db import chats, jobs, operations, stats, webhooks
from db.common import Outcome, now
from queue_gateway import chart, words
from queue_gateway.appkeys import (
    api_keys_key,
    cutter_key,
    database_key,
    intake_key,
    link_key,
    recent_results_key,
    wakeups_key,
    worker_watch_key,
)
from queue_gateway.auth import Role
from queue_gateway.endpoints import Endpoints, Param, answer, json_body
from queue_gateway.errors import BadRequest, Forbidden, JobGone, JobNotFound, NotRequeueable
from queue_gateway.lang import requested_language
from queue_gateway.public import texts
from queue_gateway.public.contract import (
    ChatSettingsBody,
    DeadJob,
    DeadJobsResponse,
    ErrorCode,
    ForgetBody,
    ForgetResponse,
    HourRow,
    JobCounts,
    LabelCount,
    Percentiles,
    QueueNow,
    RequeueResponse,
    StatsResponse,
    WebhookFailure,
    WebhooksResponse,
    Window,
    WorkerNow,
)

endpoints = Endpoints()

ID = re.compile(r"[0-9A-Za-z_.-]{1,64}")  # a platform's chat or user id (Telegram's may be negative)
LANG = Param("lang", "query", {"type": "string", "maxLength": 100}, "the languages wanted (else Accept-Language)")
LIMIT = Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 100}, "how many (default 20)")
JOB_ID = Param("job_id", "path", {"type": "string", "maxLength": 64}, required=True)
PLATFORM = Param("platform", "path", {"type": "string", "enum": ["telegram", "discord"]}, required=True)
CHAT_ID = Param("chat_id", "path", {"type": "string", "pattern": ID.pattern}, required=True)
USER_ID = Param("user_id", "path", {"type": "string", "pattern": ID.pattern}, required=True)


async def overview(request: web.Request, language: str | None = None) -> StatsResponse:
    """The numbers behind /stats, the chart and the admin page, and the /stats text in ``language``."""
    await request.app[database_key].flush_rollups()  # the counts of the last second too
    found = await request.app[database_key].read(lambda session: stats.overview(session, now=now()))
    found_queue = await request.app[link_key].queue_stats()
    queue = QueueNow(depth=found_queue[0], consumers=found_queue[1]) if found_queue else None
    lang = language or texts.DEFAULT_LANGUAGE
    watch = request.app[worker_watch_key]
    lines = words.stats_lines(
        found, queue, lang, no_worker_for=watch.gone_for() if watch.waiting_for_worker() else None
    )
    return StatsResponse(
        window=Window(since=found.since, until=found.until),
        jobs=JobCounts(
            received=found.events.get("received", 0),
            done=found.events.get("done", 0),
            delivered=found.events.get("delivered", 0),
            failed=found.events.get("failed", 0),
            dead=found.events.get("dead", 0),
            by_platform=found.received_by_platform,
            waiting_now=found.waiting,
        ),
        latency_s={name: Percentiles.model_validate(values) for name, values in found.latency.items()},
        queue=queue,
        workers=[WorkerNow.model_validate(worker) for worker in found.workers],
        workers_online=watch.online,
        no_worker_since=watch.gone_since,
        dead_waiting=found.dead_waiting,
        cache_hits=found.events.get("cache_hit", 0),
        top_labels=[LabelCount(label=label, count=n, text=texts.label(label, lang)) for label, n in found.top_labels],
        hourly=[HourRow.model_validate(row) for row in found.hourly],
        language=lang,
        stage_names={name: texts.text(f"stage_{name}", lang) for name in stats.METRICS},
        lines=lines,
        text="\n".join(lines.values()),
    )


@endpoints.get("/v1/stats", auth="bot", ok={200: StatsResponse}, params=(LANG,))
async def get_stats(request: web.Request) -> web.Response:
    """The last 24 h at a glance, and as the bots' /stats says it."""
    request.app[api_keys_key].caller(request, at_least=Role.BOT)
    return answer(await overview(request, requested_language(request)))


@endpoints.get("/v1/stats/chart.png", auth="bot", ok={200: "image/png"})
async def get_chart(request: web.Request) -> web.Response:
    """Jobs per hour and p95 latency as a PNG; drawn off the event loop."""
    request.app[api_keys_key].caller(request, at_least=Role.BOT)
    hourly: list[dict[str, Any]] = [row.model_dump() for row in (await overview(request)).hourly]
    png = await asyncio.get_running_loop().run_in_executor(None, chart.render, hourly)
    return web.Response(body=png, content_type="image/png")


@endpoints.get("/v1/webhooks", auth="admin", ok={200: WebhooksResponse}, params=(LIMIT,))
async def list_webhooks(request: web.Request) -> web.Response:
    """Completion webhooks: how many wait to be sent, and the failing ones (now or for good), newest first."""
    request.app[api_keys_key].caller(request, at_least=Role.ADMIN)
    limit = _limit(request)

    async def load(session: AsyncSession) -> tuple[int, list[Any]]:
        return await webhooks.count_pending(session), await webhooks.failing(session, limit=limit)

    pending, failing = await request.app[database_key].read(load)
    return answer(
        WebhooksResponse(
            pending=pending,
            failing=[
                WebhookFailure(
                    job_id=hook.job_id, host=hook.host, state=hook.state, attempts=hook.attempts,
                    last_status=hook.last_status, last_error=hook.last_error, next_attempt_at=hook.next_attempt_at,
                    created_at=hook.created_at,
                )
                for hook in failing
            ],
        )
    )  # fmt: skip


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "20")
    if not (raw.isascii() and raw.isdigit()):
        raise BadRequest("limit must be a whole number from 1 to 100.", code=ErrorCode.BAD_LIMIT)
    return max(1, min(int(raw), 100))


@endpoints.get("/v1/dead-jobs", auth="bot", ok={200: DeadJobsResponse}, params=(LIMIT, LANG))
async def list_dead(request: web.Request) -> web.Response:
    """Dead jobs, newest first, with their reasons (a bot key: only its own platform's)."""
    caller = request.app[api_keys_key].caller(request, at_least=Role.BOT)
    platforms = None if caller.role is Role.ADMIN else sorted(caller.platforms)
    limit = _limit(request)
    found = await request.app[database_key].read(
        lambda session: operations.dead_jobs(session, limit=limit, platforms=platforms)
    )
    dead = [DeadJob(job_id=j.id, platform=j.platform, reason=j.error, attempts=j.attempts, dead_at=j.dead_at)
            for j in found]  # fmt: skip
    lang = requested_language(request)
    return answer(
        DeadJobsResponse(jobs=dead, summary=words.dead_summary(len(dead), lang), text=words.dead_list(dead, lang))
    )


@endpoints.post(
    "/v1/jobs/{job_id}/requeue",
    auth="bot",
    ok={202: RequeueResponse},
    errors=(JobNotFound, JobGone, NotRequeueable),
    params=(JOB_ID,),
)
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
    return answer(RequeueResponse(job_id=job_id, status="received"), status=202)


@endpoints.post("/v1/forget", auth="bot", ok={200: ForgetResponse}, request=ForgetBody, params=(LANG,))
async def forget(request: web.Request) -> web.Response:
    """Delete one person's images, results and own settings now (the bots call this for /forget)."""
    caller = request.app[api_keys_key].caller(request, at_least=Role.BOT)
    body = await json_body(request, ForgetBody, 'Send {"platform": "telegram", "user_id": "42"}.')
    if not caller.acts_for(body.platform):
        raise Forbidden(f"This key may not act for {body.platform} users.")
    count = await request.app[database_key].write(
        lambda session: operations.forget_user(session, body.platform, body.user_id)
    )
    request.app[wakeups_key].delivery.set()
    request.app[cutter_key].clear()
    request.app[recent_results_key].clear()
    return answer(ForgetResponse(forgotten=count, text=words.forgotten(count, requested_language(request))))


SETTINGS = {"auth": "bot", "ok": {200: ChatSettingsBody}}


@endpoints.get("/v1/chats/{platform}/{chat_id}/settings", params=(PLATFORM, CHAT_ID), **SETTINGS)
async def get_chat_settings(request: web.Request) -> web.Response:
    """A chat's /settings (absent fields: the defaults)."""
    platform, chat_id = _chat(request)
    return await _get_settings(request, platform, chat_id)


@endpoints.patch(
    "/v1/chats/{platform}/{chat_id}/settings", params=(PLATFORM, CHAT_ID), request=ChatSettingsBody, **SETTINGS
)
async def patch_chat_settings(request: web.Request) -> web.Response:
    """Change some of a chat's settings (a field sent as null goes back to the default); the bot checks first
    that the person asking is an admin of that chat."""
    platform, chat_id = _chat(request)
    return await _patch_settings(request, platform, chat_id)


@endpoints.get("/v1/people/{platform}/{user_id}/settings", params=(PLATFORM, USER_ID), **SETTINGS)
async def get_person_settings(request: web.Request) -> web.Response:
    """A person's own /settings (they win over the chat's, in every chat)."""
    platform, user_id = _chat(request, "user_id")
    return await _get_settings(request, platform, chats.person_scope(user_id))


@endpoints.patch(
    "/v1/people/{platform}/{user_id}/settings", params=(PLATFORM, USER_ID), request=ChatSettingsBody, **SETTINGS
)
async def patch_person_settings(request: web.Request) -> web.Response:
    """Change some of a person's own settings; a field sent as null goes back to the chat's (or the default)."""
    platform, user_id = _chat(request, "user_id")
    return await _patch_settings(request, platform, chats.person_scope(user_id))


async def _get_settings(request: web.Request, platform: str, key: str) -> web.Response:
    _acting_for(request, platform)
    found = await request.app[database_key].read(lambda session: chats.get_settings(session, platform, key))
    return answer(ChatSettingsBody.model_validate(found))


async def _patch_settings(request: web.Request, platform: str, key: str) -> web.Response:
    _acting_for(request, platform)
    body = await json_body(request, ChatSettingsBody, 'Send {"conf": 0.6, "classes": ["person"]} or some of those.')
    changes = body.model_dump(exclude_unset=True)

    async def apply(session: AsyncSession) -> dict[str, Any]:
        return await chats.update_settings(session, platform, key, changes)

    found = await request.app[database_key].write(apply)
    return answer(ChatSettingsBody.model_validate(found))


def _acting_for(request: web.Request, platform: str) -> None:
    caller = request.app[api_keys_key].caller(request, at_least=Role.BOT)
    if not caller.acts_for(platform):
        raise Forbidden(f"This key may not act for {platform} chats.")


def _chat(request: web.Request, name: str = "chat_id") -> tuple[str, str]:
    platform, chat_id = request.match_info["platform"], request.match_info[name]
    if platform not in ("telegram", "discord") or not ID.fullmatch(chat_id):
        raise BadRequest(
            "Chats are /v1/chats/telegram/<id> or /v1/chats/discord/<id> (people: /v1/people/…).",
            code=ErrorCode.BAD_CHAT,
        )
    return platform, chat_id
