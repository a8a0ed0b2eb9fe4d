"""The public HTTP API: submit a photo, follow it, fetch its annotated image, cancel it, name its status message."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from typing import Any, TypeVar
from urllib.parse import urlencode

from aiohttp import web
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from db import deliveries, jobs, operations
from db.models import ACTIVE, Job
from queue_gateway.appkeys import (
    api_keys_key,
    database_key,
    intake_key,
    longpolls_key,
    metrics_key,
    pace_key,
    settings_key,
    signer_key,
    wakeups_key,
)
from queue_gateway.auth import Caller, Role
from queue_gateway.blobs import send_blob
from queue_gateway.errors import (
    BadImage,
    BadRequest,
    Forbidden,
    JobGone,
    JobNotFound,
    NotReady,
    NotYours,
    RequestTimeout,
    TooLate,
    TooManyInLine,
)
from queue_gateway.images import ImageInfo, validate
from queue_gateway.job_json import job_json
from queue_gateway.public import texts, tracing
from queue_gateway.public.contract import (
    DetectParams,
    DiscordOrigin,
    ErrorCode,
    SubmitResponse,
    TelegramOrigin,
    parse_origin,
)
from queue_gateway.signing import Action, SignatureError
from queue_gateway.uploads import is_multipart, read_body, read_form

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

MAX_WAIT_S = 60.0
FIELD_CAP = 64 * 1024  # the params and origin JSON fields
INLINE_CHECK_BYTES = 2 * 1024 * 1024  # bigger uploads are hashed in a thread, off the event loop


@routes.post("/v1/jobs")
async def submit(request: web.Request) -> web.Response:
    """Accept a photo (multipart ``image`` + optional ``params``/``origin`` JSON, or a raw image body)."""
    caller = request.app[api_keys_key].caller(request)
    settings = request.app[settings_key]
    refusals = request.app[intake_key].refusals
    sender = caller.user_ref or caller.fingerprint
    _not_over_refusals(request, sender)
    try:
        async with asyncio.timeout(settings.upload_timeout_s):
            image, fields = await _read_upload(request, settings.max_upload_bytes)
        params = _parse_model(DetectParams, fields.get("params"), "params")
        origin = _parse_origin(fields.get("origin"), caller)
        if origin is not None and origin.user_id:
            sender = f"{origin.platform}:{origin.user_id}"
            _not_over_refusals(request, sender)
        info = await _check_image(image, settings.max_upload_bytes, settings.max_pixels)
        key = request.headers.get("Idempotency-Key")
        if key is not None and not (1 <= len(key) <= 200 and key.isprintable()):
            raise BadRequest("Idempotency-Key must be 1 to 200 printable characters.", code="bad_idempotency_key")
    except TimeoutError:
        refusals.add(sender, time.time())
        raise RequestTimeout() from None
    except (BadRequest, BadImage, Forbidden):
        refusals.add(sender, time.time())  # refused uploads count against the sender's per-minute limit too
        raise
    platform = origin.platform if origin else caller.platform  # "web" for a browser of the open page
    new = jobs.NewJob(
        id=uuid.uuid4().hex,
        platform=platform,
        image=image,
        image_sha256=info.sha256,
        image_format=info.format,
        content_type=info.content_type,
        width=info.width,
        height=info.height,
        params=params.model_dump(exclude_none=True),
        origin=origin.model_dump(exclude_none=True) if origin else None,
        idempotency_key=f"{caller.fingerprint}:{key}" if key else None,
        owner=caller.fingerprint,
        user_ref=f"{platform}:{origin.user_id}" if origin and origin.user_id else caller.user_ref,
        group_key=f"{platform}:{origin.group_key}" if origin and origin.group_key else None,
        group_size=origin.group_size if origin else 1,
        group_index=origin.group_index if origin else 0,
        traceparent=tracing.traceparent(),
    )
    accepted = await request.app[intake_key].submit(new)
    if not accepted.duplicate:
        request.app[metrics_key].jobs_received.labels(platform=platform).inc()
        if accepted.cache_hit:
            request.app[metrics_key].cache_hits.inc()
            request.app[wakeups_key].job_changed(accepted.job_id, deliverable=accepted.cache_hit)
    received_at = time.time() if not accepted.duplicate else None
    body = SubmitResponse(
        job_id=accepted.job_id,
        status=accepted.status,
        position=accepted.position,
        eta_s=round(request.app[pace_key].eta_s(accepted.position), 1),
        language=accepted.language,
        status_url=_view_url(request, accepted.job_id, "", received_at),
        result_url=_view_url(request, accepted.job_id, "/result", received_at),
        duplicate=accepted.duplicate,
    )
    return web.json_response(body.model_dump(), status=200 if accepted.duplicate else 202)


def _poller(request: web.Request, caller: Caller | None) -> str:
    """Whose long-polls these are: the key's (or the browser's), or the address behind a signed link."""
    if caller is not None:
        return caller.user_ref or caller.fingerprint
    return f"link:{request.app[api_keys_key].addresses.of(request)}"


def _not_over_refusals(request: web.Request, sender: str) -> None:
    """A sender whose uploads keep being refused is over their per-minute limit before anything is read."""
    limit = request.app[intake_key].limits.of(sender).per_minute
    if request.app[intake_key].refusals.count(sender, time.time()) >= limit:
        raise TooManyInLine(
            "That is a lot of refused uploads at once. Please wait a minute.",
            retry_after=60,
            code=ErrorCode.RATE_LIMITED,
        )


@routes.get("/v1/jobs/{job_id}")
async def get_job(request: web.Request) -> web.Response:
    """A job's status, stage timestamps and detections; ``?wait=N`` waits up to N s for it to change."""
    job_id, caller = _authorise_view(request)
    wait = _wait_seconds(request)
    job, position = await _load(request, job_id, caller)
    if wait > 0 and job.status in ACTIVE:
        client = _poller(request, caller)
        with request.app[longpolls_key].hold(client, job_id, job.status):
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            while job.status in ACTIVE and (left := deadline - loop.time()) > 0:
                if await request.app[wakeups_key].wait(job_id, left):  # here, or seen changed on another replica
                    job, position = await _load(request, job_id, caller)
    view = job_json(
        job,
        position=position,
        status_url=_view_url(request, job.id, "", job.received_at),
        result_url=_view_url(request, job.id, "/result", job.received_at),
    )
    view["eta_s"] = round(request.app[pace_key].eta_s(position), 1) if job.status in ACTIVE else 0.0
    return web.json_response(view)


@routes.get("/v1/jobs/{job_id}/result")
async def get_result(request: web.Request) -> web.StreamResponse:
    """The annotated JPEG of a finished job."""
    job_id, caller = _authorise_view(request)

    async def load(session: AsyncSession) -> tuple[Job | None, str | None, str]:
        job = await jobs.get_job(session, job_id)
        if job is None or job.status in ACTIVE:
            return job, None, ""
        blob = await jobs.get_blob(session, job_id, "result")
        return job, (blob.digest if blob else None), (blob.content_type if blob else "")

    job, digest, content_type = await request.app[database_key].read(load)
    if job is None or (caller is not None and not caller.may_see(job.owner, job.platform)):
        raise JobNotFound()
    if job.status in ACTIVE:
        raise NotReady(f"The job is still {job.status}. Try again shortly.")
    if digest is None:
        if job.purged_at is not None:
            raise JobGone()
        raise JobNotFound(f"This job has no image: it {job.status} ({job.error or 'no detail'}).")
    headers = {"Cache-Control": "private, max-age=3600", "Content-Disposition": f'inline; filename="{job_id}.jpg"'}
    return await send_blob(request, request.app[database_key], digest, content_type, gone=JobGone(), headers=headers)


@routes.post("/v1/jobs/{job_id}/cancel")
async def cancel(request: web.Request) -> web.Response:
    """The sender takes back a photo (or the album it belongs to) while it waits: skipped, never delivered.

    A bot names the chat user asking (``{"user_id": "42"}``): only the person who sent the photo may cancel it.
    """
    caller = request.app[api_keys_key].caller(request)
    job_id = request.match_info["job_id"]
    job, _ = await _load(request, job_id, caller)  # 404 for a job this key may not see
    body = await _json_body(request)
    asking = body.get("user_id")
    if asking is not None and job.user_ref is not None and job.user_ref != f"{job.platform}:{asking}":
        raise NotYours()
    cancelled = await request.app[database_key].write(lambda session: operations.cancel(session, job_id))
    if not cancelled:
        raise TooLate()
    for changed in cancelled:
        request.app[wakeups_key].job_changed(changed, deliverable=True)
    return web.json_response({"job_id": job_id, "status": "cancelled", "cancelled": cancelled})


@routes.post("/v1/jobs/{job_id}/status-message")
async def set_status_message(request: web.Request) -> web.Response:
    """A bot names the "queued" message it posted, so delivery can edit it to "Done in 1.4 s"."""
    caller = request.app[api_keys_key].caller(request, at_least=Role.BOT)
    job_id = request.match_info["job_id"]
    body = await _json_body(request)
    if not isinstance(body.get("message_id"), str | int) or isinstance(body.get("message_id"), bool):
        raise BadRequest('Send {"message_id": "..."}.', code="bad_body")
    message_id = str(body["message_id"])[:100]
    if not message_id.isprintable():
        raise BadRequest("message_id must be printable text.", code="bad_body")
    await _load(request, job_id, caller)  # 404 for another platform's job
    job = await request.app[database_key].write(lambda s: deliveries.set_status_message(s, job_id, message_id))
    if job is None:
        raise JobNotFound()
    # delivered meanwhile: the delivery loop edits this message too (the statement made it due again)
    request.app[wakeups_key].job_changed(job_id, deliverable=job.delivered_at is not None)
    return web.json_response({"job_id": job_id, "status": job.status})


@routes.delete("/v1/jobs/{job_id}")
async def delete_job(request: web.Request) -> web.Response:
    """Delete a job's photo and result now, and everything in it that names its sender (its submitter, a bot for
    its platform, or an admin); one still in line is withdrawn. The bare row stays, and answers 410 after."""
    caller = request.app[api_keys_key].caller(request)
    job_id = request.match_info["job_id"]
    job, _ = await _load(request, job_id, caller)

    async def forget(session: AsyncSession) -> None:
        await operations.forget_jobs(session, [job_id], reason="deleted by its sender")

    await request.app[database_key].write(forget)
    request.app[wakeups_key].job_changed(job_id)
    log.info("job %s deleted by its sender", job_id)
    return web.json_response({"job_id": job_id, "status": "deleted", "was": job.status})


@routes.get("/v1/privacy")
async def privacy(request: web.Request) -> web.Response:
    """What is kept about a person and for how long (``?lang=ru``), as the bots' /privacy and the page say it."""
    days = max(1, math.ceil(request.app[settings_key].retention_days))
    lang = texts.language(request.query.get("lang"))
    return web.json_response({"retention_days": days, "text": texts.ntext("privacy", days, lang), "language": lang})


async def _load(request: web.Request, job_id: str, caller: Caller | None) -> tuple[Job, int]:
    async def load(session: AsyncSession) -> tuple[Job | None, int]:
        job = await jobs.get_job(session, job_id)
        return job, (await jobs.queue_position(session, job) if job is not None else 0)

    job, position = await request.app[database_key].read(load)
    if job is None or (caller is not None and not caller.may_see(job.owner, job.platform)):
        raise JobNotFound()
    return job, position


def _authorise_view(request: web.Request) -> tuple[str, Caller | None]:
    """An API key (which must be allowed to see the job), or the signed link handed out at submission."""
    job_id = request.match_info["job_id"]
    if "sig" not in request.query:
        return job_id, request.app[api_keys_key].caller(request)
    try:
        request.app[signer_key].verify(Action.VIEW, job_id, request.query.get("exp"), request.query.get("sig"))
    except SignatureError as exc:
        raise Forbidden(f"This link is not valid: {exc}.") from None
    return job_id, None


def _view_url(request: web.Request, job_id: str, suffix: str, received_at: float | None) -> str:
    """A signed link to the job's status or result: it lasts ``view_link_ttl_s`` from the job's submission, so
    reading the status again never makes a link that lives longer."""
    settings = request.app[settings_key]
    expires = int((received_at or time.time()) + settings.view_link_ttl_s)
    query = urlencode({"exp": expires, "sig": request.app[signer_key].sign(Action.VIEW, job_id, expires)})
    return str(request.url.origin()) + f"/v1/jobs/{job_id}{suffix}?{query}"


def _wait_seconds(request: web.Request) -> float:
    try:
        wait = float(request.query.get("wait", "0"))
    except ValueError:
        raise BadRequest("wait must be a number of seconds.", code="bad_wait") from None
    if not 0 <= wait <= MAX_WAIT_S:  # NaN too
        raise BadRequest(f"wait must be from 0 to {MAX_WAIT_S:g} seconds.", code="bad_wait")
    return wait


async def _read_upload(request: web.Request, max_bytes: int) -> tuple[bytes, dict[str, str]]:
    """The image bytes (capped while reading) and the other form fields."""
    if not is_multipart(request):
        return await read_body(request, max_bytes), {}
    fields = await read_form(request, {"image": max_bytes, "params": FIELD_CAP, "origin": FIELD_CAP})
    image = fields.pop("image", None)
    if image is None:
        raise BadRequest("Attach the photo as the multipart field 'image'.", code="no_image")
    return image, {name: value.decode("utf-8", "replace") for name, value in fields.items()}


async def _check_image(data: bytes, max_bytes: int, max_pixels: int) -> ImageInfo:
    """Header checks: inline for a photo, in a thread for a big file (hashing 20 MB takes a while)."""
    if len(data) <= INLINE_CHECK_BYTES:
        return validate(data, max_bytes=max_bytes, max_pixels=max_pixels)
    return await asyncio.to_thread(validate, data, max_bytes=max_bytes, max_pixels=max_pixels)


def _parse_origin(raw: str | None, caller: Caller) -> TelegramOrigin | DiscordOrigin | None:
    if not raw:
        return None
    if not caller.at_least(Role.BOT):
        raise Forbidden("Only a bot key may set an origin (it makes the gateway message that chat).")
    try:
        origin = parse_origin(raw)
    except ValidationError as exc:
        raise BadRequest(f"The 'origin' field is not valid: {_first_error(exc)}.", code="bad_origin") from None
    if not caller.acts_for(origin.platform):
        raise Forbidden(f"This bot key may not send to {origin.platform} chats.")
    return origin


def _parse_model(model: type[M], raw: str | None, name: str) -> M:
    if not raw:
        return model()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise BadRequest(f"The '{name}' field is not valid: {_first_error(exc)}.", code=f"bad_{name}") from None


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read() or b"{}")
    except (ValueError, UnicodeError):
        raise BadRequest("The body is not valid JSON.", code="bad_body") from None
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.", code="bad_body")
    return body


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {error['msg']}" if where else str(error["msg"])
