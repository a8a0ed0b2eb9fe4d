"""The public HTTP API: submit a photo, read a job, fetch its annotated image."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from db import deliveries, queries
from db.models import ACTIVE, Job
from queue_gateway.contract import DetectParams, Origin, SubmitResponse
from queue_gateway.errors import ApiError
from queue_gateway.images import ImageInfo, ImageRejected, validate
from queue_gateway.intake import Busy
from queue_gateway.keys import (
    api_keys_key,
    events_key,
    intake_key,
    metrics_key,
    sessions_key,
    settings_key,
    signer_key,
)
from queue_gateway.signing import Action, SignatureError
from queue_gateway.uploads import is_multipart, read_body, read_form
from queue_gateway.views import job_view

M = TypeVar("M", bound=BaseModel)

routes = web.RouteTableDef()

MAX_WAIT_S = 60.0
FIELD_CAP = 64 * 1024  # the params and origin JSON fields


@routes.post("/v1/jobs")
async def submit(request: web.Request) -> web.Response:
    """Accept a photo (multipart ``image`` + optional ``params``/``origin`` JSON, or a raw image body)."""
    caller = request.app[api_keys_key].check(request)
    settings = request.app[settings_key]
    image, fields = await _read_upload(request, settings.max_upload_bytes)
    params = _parse_model(DetectParams, fields.get("params"), "params")
    origin = _parse_model(Origin, fields.get("origin"), "origin") if fields.get("origin") else None
    info = await _validate_image(image, settings.max_upload_bytes, settings.max_pixels)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 200:
        raise ApiError(400, "bad_idempotency_key", "Idempotency-Key must be 1 to 200 characters.")
    platform = origin.platform if origin else "http"
    new = queries.NewJob(
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
        idempotency_key=f"{caller}:{key}" if key else None,
        user_ref=f"{platform}:{origin.user_id}" if origin and origin.user_id else None,
        group_key=f"{platform}:{origin.group_key}" if origin and origin.group_key else None,
        group_size=origin.group_size if origin else 1,
        group_index=origin.group_index if origin else 0,
    )
    try:
        accepted = await request.app[intake_key].submit(new)
    except Busy as exc:
        raise ApiError(
            503,
            "busy",
            f"We're busy right now. Please try again in about {exc.retry_after} s.",
            retry_after=exc.retry_after,
        ) from None
    job = accepted.job
    if not accepted.duplicate:
        request.app[metrics_key].jobs_received.labels(platform=platform).inc()
        if job.cache_hit:
            request.app[metrics_key].cache_hits.inc()
    body = SubmitResponse(
        job_id=job.id,
        status=job.status,
        position=accepted.position,
        status_url=_view_url(request, job.id, ""),
        result_url=_view_url(request, job.id, "/result"),
        duplicate=accepted.duplicate,
    )
    return web.json_response(body.model_dump(), status=200 if accepted.duplicate else 202)


@routes.get("/v1/jobs/{job_id}")
async def get_job(request: web.Request) -> web.Response:
    """A job's status, stage timestamps and detections; ``?wait=N`` waits up to N s for it to finish."""
    job_id = _authorise_view(request)
    wait = _wait_seconds(request)
    job, position = await _load(request, job_id)
    deadline = asyncio.get_running_loop().time() + wait
    while job.status in ACTIVE and (left := deadline - asyncio.get_running_loop().time()) > 0:
        await request.app[events_key].wait(job_id, min(left, 1.0))
        job, position = await _load(request, job_id)
    view = job_view(
        job,
        position=position,
        status_url=_view_url(request, job.id, ""),
        result_url=_view_url(request, job.id, "/result"),
    )
    return web.json_response(view)


@routes.get("/v1/jobs/{job_id}/result")
async def get_result(request: web.Request) -> web.Response:
    """The annotated JPEG of a finished job."""
    job_id = _authorise_view(request)
    async with request.app[sessions_key]() as session:
        job = await queries.get_job(session, job_id)
        if job is None:
            raise ApiError(404, "not_found", "There is no such job.")
        if job.status in ACTIVE:
            raise ApiError(409, "not_ready", f"The job is still {job.status}. Try again shortly.")
        blob = await queries.get_blob(session, job_id, "result")
    if blob is None:
        if job.purged_at is not None:
            raise ApiError(410, "purged", "This result was deleted.")
        raise ApiError(404, "no_result", f"This job has no image: it {job.status} ({job.error or 'no detail'}).")
    return web.Response(
        body=blob.data,
        content_type=blob.content_type,
        headers={
            "Cache-Control": "private, max-age=3600",
            "Content-Disposition": f'inline; filename="{job_id}.jpg"',
        },
    )


async def _load(request: web.Request, job_id: str) -> tuple[Job, int]:
    async with request.app[sessions_key]() as session:
        job = await queries.get_job(session, job_id)
        if job is None:
            raise ApiError(404, "not_found", "There is no such job.")
        return job, await queries.queue_position(session, job)


def _authorise_view(request: web.Request) -> str:
    """An API key, or the signed link handed out at submission."""
    job_id = request.match_info["job_id"]
    if "sig" not in request.query:
        request.app[api_keys_key].check(request)
        return job_id
    try:
        request.app[signer_key].verify(Action.VIEW, job_id, request.query.get("exp"), request.query.get("sig"))
    except SignatureError as exc:
        raise ApiError(403, "forbidden", f"This link is not valid: {exc}.") from None
    return job_id


def _view_url(request: web.Request, job_id: str, suffix: str) -> str:
    settings = request.app[settings_key]
    query = request.app[signer_key].query(Action.VIEW, job_id, settings.signed_url_ttl_s)
    return str(request.url.origin()) + f"/v1/jobs/{job_id}{suffix}?{query}"


def _wait_seconds(request: web.Request) -> float:
    try:
        return max(0.0, min(float(request.query.get("wait", "0")), MAX_WAIT_S))
    except ValueError:
        raise ApiError(400, "bad_wait", "wait must be a number of seconds.") from None


async def _read_upload(request: web.Request, max_bytes: int) -> tuple[bytes, dict[str, str]]:
    """The image bytes (capped while reading) and the other form fields."""
    if not is_multipart(request):
        return await read_body(request, max_bytes), {}
    fields = await read_form(request, {"image": max_bytes, "params": FIELD_CAP, "origin": FIELD_CAP})
    image = fields.pop("image", None)
    if image is None:
        raise ApiError(400, "no_image", "Attach the photo as the multipart field 'image'.")
    return image, {name: value.decode("utf-8", "replace") for name, value in fields.items()}


async def _validate_image(data: bytes, max_bytes: int, max_pixels: int) -> ImageInfo:
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(None, lambda: validate(data, max_bytes=max_bytes, max_pixels=max_pixels))
    except ImageRejected as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None


def _parse_model(model: type[M], raw: str | None, name: str) -> M:
    if not raw:
        return model()
    try:
        return model.model_validate(json.loads(raw))
    except ValidationError as exc:
        raise ApiError(400, f"bad_{name}", f"The '{name}' field is not valid: {exc.errors()[0]['msg']}.") from None
    except ValueError as exc:
        raise ApiError(400, f"bad_{name}", f"The '{name}' field is not valid JSON: {exc}.") from None


@routes.post("/v1/jobs/{job_id}/status-message")
async def set_status_message(request: web.Request) -> web.Response:
    """A bot names the "queued" message it posted, so delivery can edit it to "Done in 1.4 s"."""
    request.app[api_keys_key].check(request)
    job_id = request.match_info["job_id"]
    try:
        body = await request.json()
        message_id = str(body["message_id"])[:100]
    except (ValueError, KeyError, TypeError):
        raise ApiError(400, "bad_body", 'Send {"message_id": "..."}.') from None
    async with request.app[sessions_key].begin() as session:
        job = await deliveries.set_status_message(session, job_id, message_id)
    if job is None:
        raise ApiError(404, "not_found", "There is no such job.")
    if job.next_delivery_at is not None:
        request.app[events_key].finished.set()
    return web.json_response({"job_id": job_id, "status": job.status})
