"""A person's /history, and running a finished photo again: a new job on the stored photo (no re-upload) with a
lower or a higher confidence, only the classes it found, or the sender's /settings as they are now. A re-run has
its own place in line, limits and result, and its caption says it is one."""

from __future__ import annotations

import time
import uuid
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from db import jobs
from db.models import ACTIVE, Job
from queue_gateway import words
from queue_gateway.api import take
from queue_gateway.appkeys import api_keys_key, database_key
from queue_gateway.auth import Caller, Role
from queue_gateway.blobs import read_blob
from queue_gateway.endpoints import Endpoints, Param, answer, json_body
from queue_gateway.errors import BadRequest, Forbidden, JobGone, JobNotFound, NotReady, NotYours, TooManyInLine
from queue_gateway.lang import requested_language
from queue_gateway.public.contract import (
    DetectParams,
    DiscordOrigin,
    ErrorCode,
    HistoryEntry,
    HistoryResponse,
    RerunBody,
    RerunMode,
    SubmitResponse,
    TelegramOrigin,
)
from queue_gateway.runtime import tracing
from queue_gateway.typed_job import TypedJob

endpoints = Endpoints()

HISTORY_SIZE = 10
FLOOR_CONF = 0.05  # "lower" never asks for less than this (the workers keep detections down to it)
FALLBACK_CONF = 0.25  # the threshold of a job whose worker did not say which it applied

PLATFORM = Param("platform", "path", {"type": "string", "enum": ["telegram", "discord"]}, required=True)
USER_ID = Param("user_id", "path", {"type": "string", "pattern": r"^[0-9A-Za-z_.-]{1,64}$"}, required=True)
CHAT = Param("chat", "query", {"type": "string", "pattern": r"^-?[0-9A-Za-z_.-]{1,64}$"}, "the chat", required=True)
LANG = Param("lang", "query", {"type": "string", "maxLength": 100}, "the languages wanted (else Accept-Language)")
JOB_ID = Param("job_id", "path", {"type": "string", "maxLength": 64}, required=True)
IDEMPOTENCY_KEY = Param("Idempotency-Key", "header", {"type": "string", "minLength": 1, "maxLength": 200},
                        "the same key again returns the first re-run (a button pressed twice)")  # fmt: skip


@endpoints.get(
    "/v1/people/{platform}/{user_id}/history",
    auth="bot",
    ok={200: HistoryResponse},
    errors=(Forbidden,),
    params=(PLATFORM, USER_ID, CHAT, LANG),
)
async def get_history(request: web.Request) -> web.Response:
    """A person's last ten photos in one chat, newest first: when, what was found, which re-runs each offers
    (none once its photo is no longer kept), and the list as the bots show it, in the asked language."""
    caller = request.app[api_keys_key].caller(request, at_least=Role.BOT)
    platform, user_id = request.match_info["platform"], request.match_info["user_id"]
    chat = request.query.get("chat", "")
    if platform not in ("telegram", "discord") or not caller.acts_for(platform):
        raise Forbidden(f"This key may not act for {platform} users.")
    if not chat or len(chat) > 64:
        raise BadRequest("Name the chat: ?chat=<its id>.", code=ErrorCode.BAD_CHAT)
    found = await request.app[database_key].read(
        lambda session: jobs.history(session, platform, user_id, chat, limit=HISTORY_SIZE)
    )
    lang = requested_language(request)
    at = time.time()
    entries = [
        HistoryEntry(
            job_id=job.id, number=number, received_at=job.received_at, status=job.status,
            text=words.history_line(job, number, at, lang),
            found=words.found_labels(job),
            gone=job.purged_at is not None, rerun_of=job.rerun_of,
            reruns={mode: words.rerun_button(number, mode, lang) for mode in reruns_of(job)},
        )
        for number, job in enumerate(found, start=1)
    ]  # fmt: skip
    return answer(
        HistoryResponse(
            entries=entries,
            text=words.history([entry.text for entry in entries], lang),
            language=lang,
        )
    )


def reruns_of(job: Job) -> list[RerunMode]:
    """The re-runs a photo offers: none while it waits or once it is gone; "found" only when it found something;
    "settings" only for a chat's photo (an HTTP client has no /settings)."""
    if job.status in ACTIVE or job.purged_at is not None:
        return []
    modes: list[RerunMode] = ["lower", "higher"]
    if words.found_labels(job):
        modes.append("found")
    if job.platform in ("telegram", "discord"):
        modes.append("settings")
    return modes


def rerun_params(job: Job, mode: RerunMode) -> dict[str, Any]:
    """The new job's parameters: the old ones, changed as ``mode`` says. "settings" keeps none but the language,
    so that the intake applies the chat's and the person's /settings as they are now."""
    params = TypedJob.of(job).params
    if mode == "settings":
        return {"language": params.language} if params.language else {}
    chosen = params.model_dump(exclude_none=True)
    applied = params.conf if params.conf is not None else job.conf_used or FALLBACK_CONF
    if mode == "lower":
        chosen["conf"] = max(FLOOR_CONF, round(applied / 2, 2))
    elif mode == "higher":
        chosen["conf"] = round(min(0.95, applied + (1 - applied) / 2), 2)
    else:  # found
        chosen["classes"] = sorted(words.found_labels(job))
    return DetectParams.model_validate(chosen).model_dump(exclude_none=True)


@endpoints.post(
    "/v1/jobs/{job_id}/rerun",
    auth="client",
    ok={202: SubmitResponse, 200: SubmitResponse},
    errors=(JobNotFound, JobGone, NotReady, NotYours, Forbidden, TooManyInLine),
    request=RerunBody,
    params=(JOB_ID, LANG, IDEMPOTENCY_KEY),
)
async def rerun(request: web.Request) -> web.Response:
    """Run a finished job's stored photo again as a new job (no upload): ``{"mode": "lower" | "higher" | "found" |
    "settings"}``. A bot names the person asking (only the sender may) and where to answer (``origin``); the
    answer is as for ``POST /v1/jobs``."""
    caller = request.app[api_keys_key].caller(request)
    job_id = request.match_info["job_id"]
    body = await json_body(request, RerunBody, 'Send {"mode": "lower"}.')
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (1 <= len(key) <= 200 and key.isprintable()):
        raise BadRequest("Idempotency-Key must be 1 to 200 printable characters.", code=ErrorCode.BAD_IDEMPOTENCY_KEY)

    async def load(session: AsyncSession) -> tuple[Job | None, str | None, str]:
        job = await jobs.get_job(session, job_id)
        if job is None or job.status in ACTIVE or job.purged_at is not None:
            return job, None, ""
        blob = await jobs.get_blob(session, job_id, "input")
        return job, (blob.digest if blob else None), (blob.content_type if blob else "")

    job, digest, content_type = await request.app[database_key].read(load)
    if job is None or not caller.may_see(job.owner, job.platform):
        raise JobNotFound()
    if job.status in ACTIVE:
        raise NotReady(f"The job is still {job.status}: it can run again once it is done.")
    gone = JobGone("This job's photo is no longer kept; send it again.")
    if digest is None:
        raise gone
    if body.user_id is not None and job.user_ref != f"{job.platform}:{body.user_id}":
        raise NotYours("Only the person who sent the photo may run it again.")
    if body.mode not in reruns_of(job):
        raise BadRequest(f"This photo cannot run again with {body.mode!r}.", code=ErrorCode.BAD_BODY)
    image = await read_blob(request.app[database_key], digest, gone=gone)  # the same file: put again, it is kept
    origin = _origin(caller, job, body.origin)
    new = jobs.NewJob(
        id=uuid.uuid4().hex,
        platform=job.platform,
        image=image,
        image_sha256=job.image_sha256,
        image_format=job.image_format,
        content_type=content_type,
        width=job.width,
        height=job.height,
        params=rerun_params(job, body.mode),
        origin=origin.model_dump(exclude_none=True) if origin else None,
        idempotency_key=f"{caller.fingerprint}:{key}" if key else None,
        owner=caller.fingerprint,
        user_ref=job.user_ref or caller.user_ref,
        traceparent=tracing.traceparent(),
        rerun_of=job.id,
        rerun_mode=body.mode,
        media=job.media,
        clip=_as_probed(job.clip) if job.media == "clip" else None,
    )
    return await take(request, new)


def _as_probed(clip: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the probe found of a clip (its length, frames, container, codec), without the last run's results."""
    if clip is None:
        return None
    return {key: clip[key] for key in ("duration_s", "source_frames", "container", "codec") if key in clip}


def _origin(
    caller: Caller, job: Job, given: TelegramOrigin | DiscordOrigin | None
) -> TelegramOrigin | DiscordOrigin | None:
    """Where the re-run answers: the chat the bot names (on the job's own platform; a Telegram answer replies to
    the original photo unless told otherwise), or nowhere for an HTTP client's job."""
    if given is None:
        if job.platform in ("telegram", "discord"):
            raise BadRequest("A chat photo's re-run needs the origin to answer in.", code=ErrorCode.BAD_ORIGIN)
        return None
    if not caller.at_least(Role.BOT):
        raise Forbidden("Only a bot key may set an origin (it makes the gateway message that chat).")
    if given.platform != job.platform or not caller.acts_for(given.platform):
        raise Forbidden(f"This key may not send to {given.platform} chats, or this is not one of its photos.")
    before = TypedJob.of(job).origin
    if not (isinstance(given, TelegramOrigin) and isinstance(before, TelegramOrigin)):
        return given
    if given.message_id is None and before.chat_id == given.chat_id:
        return given.model_copy(update={"message_id": before.message_id})
    return given
