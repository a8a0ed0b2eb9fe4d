"""The public HTTP API: submit a photo, follow it, fetch its annotated image, cancel or delete it, name its status
message, and what is kept about a person."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
import uuid
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from db import deliveries, jobs, operations, webhooks
from db.models import ACTIVE, WAITING, Job
from queue_gateway import crops, words
from queue_gateway.appkeys import (
    api_keys_key,
    cutter_key,
    database_key,
    intake_key,
    longpolls_key,
    metrics_key,
    pace_key,
    recent_results_key,
    settings_key,
    signer_key,
    wakeups_key,
    worker_watch_key,
)
from queue_gateway.auth import Caller, Role
from queue_gateway.blobs import read_blob, send_blob
from queue_gateway.endpoints import Endpoints, Param, answer, first_error, json_body
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
    Unstorable,
)
from queue_gateway.images import ImageInfo, check_upload, is_clip
from queue_gateway.job_json import job_view, view_link
from queue_gateway.lang import requested_language
from queue_gateway.public import texts
from queue_gateway.public.contract import (
    CancelBody,
    CancelResponse,
    CropsIndex,
    CropView,
    DeletedResponse,
    DetectParams,
    DiscordOrigin,
    ErrorCode,
    JobView,
    PrivacyResponse,
    StatusMessageBody,
    StatusMessageResponse,
    SubmitResponse,
    TelegramOrigin,
    parse_origin,
)
from queue_gateway.runtime import tracing
from queue_gateway.settings import GatewaySettings
from queue_gateway.signing import Action
from queue_gateway.typed_job import TypedJob
from queue_gateway.uploads import is_multipart, read_body, read_form
from queue_gateway.webhooks import MAX_URL_CHARS, BadWebhookUrl, check_url

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger(__name__)

endpoints = Endpoints()

MAX_WAIT_S = 60.0
FIELD_CAP = 64 * 1024  # the params and origin JSON fields
INLINE_CHECK_BYTES = 2 * 1024 * 1024  # bigger uploads are hashed in a thread, off the event loop

JOB_ID = Param("job_id", "path", {"type": "string", "maxLength": 64}, required=True)
LANG = Param("lang", "query", {"type": "string", "maxLength": 100}, "the languages wanted (else Accept-Language)")
USER_ID = Param("user_id", "query", {"type": "string", "maxLength": 64}, "a bot's: the person asking")
WAIT = Param("wait", "query", {"type": "number", "minimum": 0, "maximum": MAX_WAIT_S}, "seconds to wait for a change")
WEBHOOK_URL = Param("webhook_url", "query", {"type": "string", "maxLength": 2000},
                    "POSTed to (signed) when the job finishes; or the multipart field of that name")  # fmt: skip
IDEMPOTENCY_KEY = Param("Idempotency-Key", "header", {"type": "string", "minLength": 1, "maxLength": 200},
                        "the same key again returns the first job")  # fmt: skip


@endpoints.post(
    "/v1/jobs",
    auth="client",
    ok={202: SubmitResponse, 200: SubmitResponse},
    errors=(BadImage, Forbidden, RequestTimeout, TooManyInLine, Unstorable),
    request="upload",
    params=(IDEMPOTENCY_KEY, WEBHOOK_URL),
)
async def submit(request: web.Request) -> web.Response:
    """Submit a photo or a GIF or short clip: multipart ``image`` (+ ``params``, ``webhook_url``, and ``origin``
    for a bot key), or a raw body (``?webhook_url=``). A clip over its limits is refused at once, nothing stored."""
    caller = request.app[api_keys_key].caller(request)
    settings = request.app[settings_key]
    refusals = request.app[intake_key].refusals
    sender = caller.user_ref or caller.fingerprint
    _not_over_refusals(request, sender)
    try:
        async with asyncio.timeout(settings.upload_timeout_s):
            image, fields = await _read_upload(request, settings.upload_cap())
        params = _parse_model(DetectParams, fields.get("params"), ErrorCode.BAD_PARAMS)
        origin = _parse_origin(fields.get("origin"), caller)
        if origin is not None and origin.user_id:
            sender = f"{origin.platform}:{origin.user_id}"
            _not_over_refusals(request, sender)
        info = await _check_image(image, settings)
        webhook = await _webhook_target(request, caller, fields.get("webhook_url") or request.query.get("webhook_url"))
        key = request.headers.get("Idempotency-Key")
        if key is not None and not (1 <= len(key) <= 200 and key.isprintable()):
            raise BadRequest(
                "Idempotency-Key must be 1 to 200 printable characters.", code=ErrorCode.BAD_IDEMPOTENCY_KEY
            )
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
        webhook=webhook,
        media=info.media,
        clip=info.clip,
    )
    return await take(request, new)


async def take(request: web.Request, new: jobs.NewJob) -> web.Response:
    """Hand a new job to the intake and answer as ``POST /v1/jobs`` does (202, or 200 for a repeat)."""
    accepted = await request.app[intake_key].submit(new)
    if not accepted.duplicate:
        request.app[metrics_key].jobs_received.labels(platform=new.platform).inc()
        if accepted.cache_hit:
            request.app[metrics_key].cache_hits.inc()
            request.app[wakeups_key].job_changed(accepted.job_id, deliverable=accepted.cache_hit)
    received_at = time.time() if not accepted.duplicate else None
    eta_s = request.app[pace_key].eta_s(accepted.position)
    no_worker = accepted.status in WAITING and request.app[worker_watch_key].waiting_for_worker()
    lang = requested_language(request)
    status_text = words.waiting(accepted.position, eta_s, lang, no_worker=no_worker)
    if new.rerun_mode:
        status_text = texts.text("rerun_status", lang, mode=words.rerun_mode(new.rerun_mode, lang)) + "\n" + status_text
    body = SubmitResponse(
        job_id=accepted.job_id,
        status=accepted.status,
        position=accepted.position,
        eta_s=None if no_worker else round(eta_s, 1),
        waiting_for_worker=no_worker,
        status_text=status_text,
        language=accepted.language,
        status_url=_view_url(request, accepted.job_id, "", received_at),
        result_url=_view_url(request, accepted.job_id, "/result", received_at),
        duplicate=accepted.duplicate,
        rerun_of=new.rerun_of,
    )
    return answer(body, status=200 if accepted.duplicate else 202)


@endpoints.get(
    "/v1/jobs/{job_id}",
    auth="view",
    ok={200: JobView},
    errors=(JobNotFound, TooManyInLine),
    params=(JOB_ID, WAIT, LANG),
)
async def get_job(request: web.Request) -> web.Response:
    """A job: its status (and that sentence), place in line, timings, detections, caption; ``?wait=N`` waits up
    to N s for it to change."""
    job_id, caller = _authorise_view(request)
    wait = _wait_seconds(request)
    job, position = await _load(request, job_id, caller)
    if wait > 0 and job.status in ACTIVE:
        with request.app[longpolls_key].hold(_poller(request, caller), job_id, job.status):
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            while job.status in ACTIVE and (left := deadline - loop.time()) > 0:
                if await request.app[wakeups_key].wait(job_id, left):  # here, or seen changed on another replica
                    job, position = await _load(request, job_id, caller)
    hook = await request.app[database_key].read(lambda session: webhooks.of_jobs(session, [job_id]))
    view = job_view(
        TypedJob.of(job),
        position=position,
        eta_s=request.app[pace_key].eta_s(position),
        language=requested_language(request) if _asks_language(request) else None,
        status_url=_view_url(request, job.id, "", job.received_at),
        result_url=_view_url(request, job.id, "/result", job.received_at),
        crops_url=_view_url(request, job.id, "/crops", job.received_at),
        no_worker=request.app[worker_watch_key].waiting_for_worker(),
        webhook=hook.get(job_id),
    )
    return answer(view)


RESULT_TYPES = ("image/jpeg", "video/mp4", "image/gif")
EXTENSIONS = {"image/jpeg": "jpg", "video/mp4": "mp4", "image/gif": "gif"}


@endpoints.get(
    "/v1/jobs/{job_id}/result",
    auth="view",
    ok={200: RESULT_TYPES},
    errors=(JobNotFound, NotReady, JobGone),
    params=(JOB_ID,),
)
async def get_result(request: web.Request) -> web.StreamResponse:
    """The annotated JPEG of a finished job, or a clip's annotated animation (MP4 or GIF)."""
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
    name = f"{job_id}.{EXTENSIONS.get(content_type, 'jpg')}"
    headers = {"Cache-Control": "private, max-age=3600", "Content-Disposition": f'inline; filename="{name}"'}
    return await send_blob(request, request.app[database_key], digest, content_type, gone=JobGone(), headers=headers)


@endpoints.get(
    "/v1/jobs/{job_id}/crops",
    auth="view",
    ok={200: "application/zip"},
    errors=(JobNotFound, NotReady, JobGone, NotYours),
    params=(JOB_ID, LANG, USER_ID),
)
async def get_crops(request: web.Request) -> web.Response:
    """The objects it found, cut out of the original photo: a ZIP of JPEGs (largest first, at most 10, none under
    32 px a side) and ``index.json`` with each one's label, confidence and caption in the asked language. A bot
    names the person asking (``user_id``) unless they are the chat's admin: only the sender may see them."""
    job_id, caller = _authorise_view(request)

    async def load(session: AsyncSession) -> tuple[Job | None, str | None]:
        job = await jobs.get_job(session, job_id)
        if job is None or job.status in ACTIVE or job.purged_at is not None:
            return job, None
        blob = await jobs.get_blob(session, job_id, "input")
        return job, (blob.digest if blob else None)

    job, digest = await request.app[database_key].read(load)
    if job is None or (caller is not None and not caller.may_see(job.owner, job.platform)):
        raise JobNotFound()
    if job.media == "clip":
        raise JobNotFound("A clip's objects are not cut out: only a photo's are.")
    if job.status in ACTIVE:
        raise NotReady(f"The job is still {job.status}. Try again shortly.")
    if job.purged_at is not None or digest is None:
        raise JobGone()
    asker = request.query.get("user_id")
    if asker is not None and job.user_ref != f"{job.platform}:{asker}":
        raise NotYours("Only the person who sent the photo, or a chat admin, may have its objects.")
    image = await read_blob(request.app[database_key], digest, gone=JobGone())
    found = await request.app[cutter_key].cut(job_id, image, job.detections or [])
    lang = requested_language(request) if _asks_language(request) else TypedJob.of(job).language
    index = CropsIndex(
        job_id=job_id,
        language=lang,
        caption=words.crops_caption(len(found.items), found.too_small, found.more, lang),
        objects=[
            CropView(file=name, label=crop.label, text=words.crop_text(crop.label, crop.confidence, lang),
                     confidence=round(crop.confidence, 4), box=[round(v, 1) for v in crop.box])
            for name, crop in zip(crops.file_names(found), found.items, strict=True)
        ],
        too_small=found.too_small,
        more=found.more,
    )  # fmt: skip
    body = await asyncio.to_thread(crops.archive, index.model_dump(mode="json"), found)
    return web.Response(
        body=body,
        content_type="application/zip",
        headers={
            "Cache-Control": "private, max-age=600",
            "Content-Disposition": f'attachment; filename="{job_id}-objects.zip"',
        },
    )


@endpoints.post(
    "/v1/jobs/{job_id}/cancel",
    auth="client",
    ok={200: CancelResponse},
    errors=(JobNotFound, NotYours, TooLate),
    request=CancelBody,
    params=(JOB_ID,),
)
async def cancel(request: web.Request) -> web.Response:
    """Take back a photo (or the album it belongs to) while it waits: skipped, never delivered. A bot names the chat
    user asking: only the person who sent the photo may cancel it."""
    caller = request.app[api_keys_key].caller(request)
    job_id = request.match_info["job_id"]
    job, _ = await _load(request, job_id, caller)  # 404 for a job this key may not see
    body = await json_body(request, CancelBody, 'Send {"user_id": "42"} or {}.')
    if body.user_id is not None and job.user_ref is not None and job.user_ref != f"{job.platform}:{body.user_id}":
        raise NotYours()
    cancelled = await request.app[database_key].write(lambda session: operations.cancel(session, job_id))
    if not cancelled:
        raise TooLate()
    for changed in cancelled:
        request.app[wakeups_key].job_changed(changed, deliverable=True)
    return answer(CancelResponse(job_id=job_id, status="cancelled", cancelled=cancelled))


@endpoints.post(
    "/v1/jobs/{job_id}/status-message",
    auth="bot",
    ok={200: StatusMessageResponse},
    errors=(JobNotFound,),
    request=StatusMessageBody,
    params=(JOB_ID,),
)
async def set_status_message(request: web.Request) -> web.Response:
    """A bot names the "queued" message it posted, so delivery can edit it to "Done in 1.4 s"."""
    caller = request.app[api_keys_key].caller(request, at_least=Role.BOT)
    job_id = request.match_info["job_id"]
    body = await json_body(request, StatusMessageBody, 'Send {"message_id": "..."}.')
    message_id = body.value
    if not message_id.isprintable():
        raise BadRequest("message_id must be printable text.", code=ErrorCode.BAD_BODY)

    async def name(session: AsyncSession) -> deliveries.StatusNamed:
        job = await deliveries.set_status_message(session, job_id, message_id)
        if job is None or not caller.may_see(job.owner, job.platform):
            raise JobNotFound()  # another platform's job: rolled back, as if it were not there
        return job

    job = await request.app[database_key].write(name)
    # delivered meanwhile: the delivery loop edits this message too (the statement made it due again)
    request.app[wakeups_key].job_changed(job_id, deliverable=job.delivered_at is not None)
    return answer(StatusMessageResponse(job_id=job_id, status=job.status))


@endpoints.delete(
    "/v1/jobs/{job_id}", auth="client", ok={200: DeletedResponse}, errors=(JobNotFound,), params=(JOB_ID,)
)
async def delete_job(request: web.Request) -> web.Response:
    """Delete a job's photo and result now, and everything in it that names its sender (its submitter, a bot for
    its platform, or an admin); one still in line is withdrawn. The bare row stays, and answers 410 after."""
    caller = request.app[api_keys_key].caller(request)
    job_id = request.match_info["job_id"]
    job, _ = await _load(request, job_id, caller)
    was = job.status

    async def forget(session: AsyncSession) -> None:
        await operations.forget_jobs(session, [job_id], reason="deleted by its sender")

    await request.app[database_key].write(forget)
    request.app[cutter_key].clear()
    request.app[recent_results_key].clear()
    request.app[wakeups_key].job_changed(job_id)
    log.info("job %s deleted by its sender", job_id)
    return answer(DeletedResponse(job_id=job_id, status="deleted", was=was))


@endpoints.get("/v1/privacy", auth="public", ok={200: PrivacyResponse}, params=(LANG,), database=False)
async def privacy(request: web.Request) -> web.Response:
    """What is kept about a person and for how long, as the bots' /privacy and the page say it."""
    settings = request.app[settings_key]
    days = max(1, math.ceil(settings.retention_days))
    lang = requested_language(request)
    history = max(days, math.ceil(settings.history_days))
    text = texts.ntext("privacy", days, lang) + " " + texts.ntext("privacy_history", history, lang)
    return answer(PrivacyResponse(retention_days=days, text=text, language=lang))


async def _webhook_target(request: web.Request, caller: Caller, raw: str | None) -> webhooks.Target | None:
    """The job's webhook, checked now: http(s) to a public host (400 otherwise), for an API key's jobs only."""
    if raw is None:
        return None
    settings = request.app[settings_key]
    if caller.platform == "web":
        raise Forbidden("Webhooks need an API key; a browser follows its photos on the page.")
    if settings.webhook_secret is None:
        raise BadRequest(
            "This gateway sends no webhooks: its operator has not set DETECTBOT_WEBHOOK_SECRET. Follow status_url "
            "(GET …?wait=60) instead.",
            code=ErrorCode.WEBHOOKS_OFF,
        )
    try:
        url, host = await check_url(raw, allow_private=settings.webhook_allow_private)
    except BadWebhookUrl as exc:
        raise BadRequest(f"webhook_url: {exc}.", code=ErrorCode.BAD_WEBHOOK_URL) from None
    return webhooks.Target(url=url, host=host, base_url=str(request.url.origin()))


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
    request.app[signer_key].verify(Action.VIEW, job_id, request.query.get("exp"), request.query.get("sig"))
    return job_id, None


def _asks_language(request: web.Request) -> bool:
    return "lang" in request.query or "Accept-Language" in request.headers


def _view_url(request: web.Request, job_id: str, suffix: str, received_at: float | None) -> str:
    """A signed link to the job's status or result: it lasts ``view_link_ttl_s`` from the job's submission, so
    reading the status again never makes a link that lives longer."""
    expires = int((received_at or time.time()) + request.app[settings_key].view_link_ttl_s)
    return view_link(request.app[signer_key], str(request.url.origin()), job_id, suffix, expires=expires)


def _wait_seconds(request: web.Request) -> float:
    try:
        wait = float(request.query.get("wait", "0"))
    except ValueError:
        raise BadRequest("wait must be a number of seconds.", code=ErrorCode.BAD_WAIT) from None
    if not 0 <= wait <= MAX_WAIT_S:  # NaN too
        raise BadRequest(f"wait must be from 0 to {MAX_WAIT_S:g} seconds.", code=ErrorCode.BAD_WAIT)
    return wait


async def _read_upload(request: web.Request, max_bytes: int) -> tuple[bytes, dict[str, str]]:
    """The image bytes (capped while reading) and the other form fields."""
    if not is_multipart(request):
        return await read_body(request, max_bytes), {}
    caps = {"image": max_bytes, "params": FIELD_CAP, "origin": FIELD_CAP, "webhook_url": MAX_URL_CHARS * 2}
    fields = await read_form(request, caps)
    image = fields.pop("image", None)
    if image is None:
        raise BadRequest("Attach the photo as the multipart field 'image'.", code=ErrorCode.NO_IMAGE)
    return image, {name: value.decode("utf-8", "replace") for name, value in fields.items()}


async def _check_image(data: bytes, settings: GatewaySettings) -> ImageInfo:
    """Structure checks: inline for a photo, in a thread for a big file (hashing 20 MB takes a while) or a clip
    (its probe demuxes it)."""
    check = functools.partial(
        check_upload, data, max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels,
        clip_limits=settings.clip_limits(),
    )  # fmt: skip
    if len(data) <= INLINE_CHECK_BYTES and not is_clip(data):
        return check()
    return await asyncio.to_thread(check)


def _parse_origin(raw: str | None, caller: Caller) -> TelegramOrigin | DiscordOrigin | None:
    if not raw:
        return None
    if not caller.at_least(Role.BOT):
        raise Forbidden("Only a bot key may set an origin (it makes the gateway message that chat).")
    try:
        origin = parse_origin(raw)
    except ValidationError as exc:
        raise BadRequest(f"The 'origin' field is not valid: {first_error(exc)}.", code=ErrorCode.BAD_ORIGIN) from None
    if not caller.acts_for(origin.platform):
        raise Forbidden(f"This bot key may not send to {origin.platform} chats.")
    return origin


def _parse_model(model: type[M], raw: str | None, code: ErrorCode) -> M:
    if not raw:
        return model()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise BadRequest(
            f"The '{code.removeprefix('bad_')}' field is not valid: {first_error(exc)}.", code=code
        ) from None
