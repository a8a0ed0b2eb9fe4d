"""The worker-facing endpoints, reachable only through signed capability URLs."""

from __future__ import annotations

import logging

from aiohttp import web
from pydantic import ValidationError

from db import queries, transitions
from db.queries import Outcome
from queue_gateway.contract import ResultMeta
from queue_gateway.errors import ApiError
from queue_gateway.images import sniff
from queue_gateway.keys import events_key, metrics_key, sessions_key, settings_key, signer_key
from queue_gateway.signing import Action, SignatureError
from queue_gateway.uploads import is_multipart, read_form

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

MAX_RESULT_BYTES = 12 * 1024 * 1024  # the worker keeps results under 9 MB
META_CAP = 1024 * 1024  # detections JSON: 300 boxes are ~40 KB


def _verify(request: web.Request, action: Action) -> str:
    job_id = request.match_info["job_id"]
    try:
        request.app[signer_key].verify(action, job_id, request.query.get("exp"), request.query.get("sig"))
    except SignatureError as exc:
        status = 401 if exc.expired or "missing" in str(exc) else 403
        raise ApiError(status, "expired" if exc.expired else "forbidden", f"Not allowed: {exc}.") from None
    return job_id


@routes.get("/v1/worker/jobs/{job_id}/input")
async def fetch_input(request: web.Request) -> web.Response:
    """Hand the input image to a worker and count the attempt; 410 when there is nothing left to do."""
    job_id = _verify(request, Action.INPUT)
    worker = request.headers.get("X-Detectbot-Worker", "unknown")[:120]
    limit = request.app[settings_key].delivery_limit
    async with request.app[sessions_key].begin() as session:
        await transitions.saw_worker(session, worker)
        outcome = await transitions.start_attempt(session, job_id, worker=worker, max_attempts=limit)
        blob = await queries.get_blob(session, job_id, "input") if outcome is Outcome.APPLIED else None
    if outcome is Outcome.NOT_FOUND:
        raise ApiError(404, "not_found", "There is no such job.")
    if outcome is Outcome.EXHAUSTED:
        request.app[events_key].notify(job_id)
        log.warning("job %s dead: %d attempts", job_id, limit)
        request.app[metrics_key].jobs_finished.labels(status="dead").inc()
        raise ApiError(410, "dead", "This job failed too many times.")
    if outcome is Outcome.GONE or blob is None:
        raise ApiError(410, "gone", "This job is finished or was deleted.")
    log.info("job %s processing on %s", job_id, worker)
    return web.Response(body=blob.data, content_type=blob.content_type)


@routes.post("/v1/worker/jobs/{job_id}/result")
async def post_result(request: web.Request) -> web.Response:
    """Record a worker's result; the first one wins, repeats answer 200 and change nothing."""
    job_id = _verify(request, Action.RESULT)
    meta, image = await _read_result(request)
    async with request.app[sessions_key].begin() as session:
        await transitions.saw_worker(session, meta.worker, meta.model)
        if meta.ok:
            if image is None or sniff(image) != "JPEG":
                raise ApiError(400, "no_image", "A successful result needs the annotated JPEG as 'image'.")
            outcome = await transitions.complete(
                session,
                job_id,
                detections=[d.model_dump() for d in meta.detections],
                model=meta.model,
                worker=meta.worker,
                inference_ms=meta.inference_ms,
                image=image,
            )
        else:
            outcome = await transitions.fail(
                session,
                job_id,
                code=meta.error_code or "failed",
                message=meta.error or "unknown error",
                worker=meta.worker,
            )
    if outcome is Outcome.NOT_FOUND:
        raise ApiError(404, "not_found", "There is no such job.")
    if outcome is Outcome.APPLIED:
        request.app[events_key].notify(job_id)
        await _observe(request, job_id)
        log.info(
            "job %s %s by %s (%d detections)",
            job_id,
            "done" if meta.ok else "failed",
            meta.worker,
            len(meta.detections),
        )
    return web.json_response({"job_id": job_id, "outcome": outcome.value})


async def _observe(request: web.Request, job_id: str) -> None:
    async with request.app[sessions_key]() as session:
        job = await queries.get_job(session, job_id)
    if job is None:
        return
    finished = job.done_at or job.failed_at
    stages = {
        "queue_wait": _span(job.received_at, job.processing_at),
        "processing": _span(job.processing_at, finished),
        "end_to_end": _span(job.received_at, finished),
    }
    request.app[metrics_key].observe_finished(job.status, stages, job.model, job.inference_ms)


def _span(start: float | None, end: float | None) -> float | None:
    return end - start if start is not None and end is not None else None


async def _read_result(request: web.Request) -> tuple[ResultMeta, bytes | None]:
    if not is_multipart(request):
        raise ApiError(415, "multipart_required", "Send the result as multipart: 'meta' JSON and 'image'.")
    fields = await read_form(request, {"meta": META_CAP, "image": MAX_RESULT_BYTES})
    if "meta" not in fields:
        raise ApiError(400, "no_meta", "The 'meta' JSON part is missing.")
    try:
        return ResultMeta.model_validate_json(fields["meta"]), fields.get("image")
    except ValidationError as exc:
        raise ApiError(400, "bad_meta", f"The result meta is not valid: {exc.errors()[0]['msg']}.") from None
