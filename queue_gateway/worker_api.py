"""The worker-facing endpoints, reachable only through signed capability URLs."""

from __future__ import annotations

import logging

from aiohttp import web
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from db import transitions
from db.common import Outcome
from db.transitions import Finished, Handoff
from queue_gateway.appkeys import (
    database_key,
    delivery_key,
    metrics_key,
    pace_key,
    recent_results_key,
    settings_key,
    sightings_key,
    signer_key,
    wakeups_key,
)
from queue_gateway.blobs import send_blob, store_blob
from queue_gateway.endpoints import Endpoints, Param, answer, first_error, json_body
from queue_gateway.errors import BadRequest, JobGone, JobNotFound, Unauthorized
from queue_gateway.images import sniff
from queue_gateway.public import clips
from queue_gateway.public.contract import ClipProgress, ErrorCode, ProgressAck, ResultAck, ResultMeta
from queue_gateway.signing import Action, SignatureExpired
from queue_gateway.uploads import is_multipart, read_form

log = logging.getLogger(__name__)

endpoints = Endpoints()

MAX_RESULT_BYTES = 12 * 1024 * 1024  # the worker keeps results under 9 MB, a clip's animation under 10 MiB
META_CAP = 1024 * 1024  # detections JSON: 300 boxes are ~40 KB


def _verify(request: web.Request, action: Action) -> tuple[str, int]:
    """The job and the link generation a worker link is signed for (a requeue starts a new generation)."""
    job_id = request.match_info["job_id"]
    gen = request.query.get("gen", "")
    if not (gen.isascii() and gen.isdigit() and len(gen) <= 9):
        raise Unauthorized("This link needs its generation, expiry and signature (gen, exp and sig).")
    try:
        request.app[signer_key].verify(action, f"{job_id}.{gen}", request.query.get("exp"), request.query.get("sig"))
    except SignatureExpired:  # a job waiting this long was published again with new links: drop this message
        raise JobGone("This link has expired; the job was sent again with new links.") from None
    return job_id, int(gen)


def _delivery(request: web.Request) -> int | None:
    """The broker's delivery number of the worker's message (1 for the first), when the worker says it."""
    raw = request.headers.get("X-Detectbot-Delivery", "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 6 else None


JOB_ID = Param("job_id", "path", {"type": "string", "maxLength": 64}, required=True)
SIGNED = tuple(Param(name, "query", {"type": "string"}, required=True) for name in ("gen", "exp", "sig"))
WORKER = Param("X-Detectbot-Worker", "header", {"type": "string", "maxLength": 120}, "the worker's name")
DELIVERY = Param(
    "X-Detectbot-Delivery",
    "header",
    {"type": "string", "pattern": "^[0-9]{1,6}$"},
    "the broker's delivery number of the message (a repeat of one delivery is the same attempt)",
)


@endpoints.get(
    "/v1/worker/jobs/{job_id}/input",
    auth="worker",
    ok={200: "application/octet-stream"},
    errors=(JobNotFound,),
    params=(JOB_ID, *SIGNED, WORKER, DELIVERY),
)
async def fetch_input(request: web.Request) -> web.StreamResponse:
    """Workers: hand over the input image and count the attempt; 410 when there is nothing left to do."""
    job_id, link_gen = _verify(request, Action.INPUT)
    worker = request.headers.get("X-Detectbot-Worker", "unknown")[:120]
    delivery = _delivery(request)
    limit = request.app[settings_key].delivery_limit
    seen = request.app[sightings_key].due(worker)

    async def start(session: AsyncSession) -> tuple[Outcome, str | None, str]:
        if seen:
            await transitions.saw_worker(session, worker)
        outcome, found = await transitions.start_fetch(
            session, job_id, worker=worker, max_attempts=limit, link_gen=link_gen, delivery=delivery
        )
        return outcome, (found.digest if found else None), (found.content_type if found else "")

    outcome, digest, content_type = await request.app[database_key].write(start)
    if outcome is Outcome.NOT_FOUND:
        raise JobNotFound()
    if outcome not in (Outcome.APPLIED, Outcome.REPEATED):
        request.app[wakeups_key].job_changed(job_id, deliverable=outcome is Outcome.EXHAUSTED)
    if outcome is Outcome.EXHAUSTED:
        log.warning("job %s dead: %d attempts", job_id, limit)
        request.app[metrics_key].jobs_finished.labels(status="dead").inc()
        raise JobGone("This job failed too many times.")
    gone = JobGone("This job is finished, cancelled or deleted: there is nothing left to do.")
    if outcome is Outcome.GONE or digest is None:
        raise gone
    if outcome is Outcome.APPLIED:
        request.app[wakeups_key].job_changed(job_id)  # it left the line: positions move
        log.info("job %s processing on %s", job_id, worker)
    return await send_blob(request, request.app[database_key], digest, content_type, gone=gone)


@endpoints.post(
    "/v1/worker/jobs/{job_id}/result",
    auth="worker",
    ok={200: ResultAck},
    errors=(JobNotFound,),
    request="result",
    params=(JOB_ID, *SIGNED),
)
async def post_result(request: web.Request) -> web.Response:
    """Workers: record a result (the annotated JPEG, or a clip's animation and summary); the first one wins,
    repeats answer 200 and change nothing."""
    job_id, link_gen = _verify(request, Action.RESULT)
    meta, image = await _read_result(request)
    if meta.ok:
        _check_image(meta, image)
    seen = request.app[sightings_key].due(meta.worker, meta.model)
    database = request.app[database_key]
    stored = await store_blob(database.blobs, image, meta.content_type) if meta.ok and image else None
    refused = _refusal(meta)

    async def record(session: AsyncSession, handoff: Handoff | None) -> tuple[Outcome, Finished | None]:
        if seen:
            await transitions.saw_worker(session, meta.worker, meta.model)
        if not meta.ok and not meta.final:
            note = meta.error or "this attempt failed"
            outcome = await transitions.note_failure(
                session, job_id, code=meta.error_code or "failed", message=note, link_gen=link_gen
            )
            return outcome, None
        if stored is not None:
            return await transitions.complete(
                session,
                database.blobs,
                job_id,
                link_gen=link_gen,
                detections=[d.model_dump() for d in meta.detections],
                model=meta.model,
                worker=meta.worker,
                inference_ms=meta.inference_ms,
                image=stored,
                conf_used=meta.conf,
                clip=meta.clip.model_dump() | {"result_type": meta.content_type} if meta.clip is not None else None,
                handoff=handoff,
            )
        return await transitions.fail(
            session,
            job_id,
            code=meta.error_code or "failed",
            message=meta.error or "unknown error",
            worker=meta.worker,
            link_gen=link_gen,
            refused=refused,
            handoff=handoff,
        )

    delivery = request.app[delivery_key]
    with delivery.offer() as handoff:  # the delivery that follows is leased in the same statement, and starts here
        outcome, finished = await database.write(lambda session: record(session, handoff))
        if finished is not None and stored is not None and finished.deliverable:  # its delivery reads no store
            request.app[recent_results_key].keep(job_id, stored)
        if finished is not None and finished.leased is not None:
            delivery.take(finished.leased)
    if outcome is Outcome.NOT_FOUND:
        raise JobNotFound()
    if finished is not None:
        # a delivery in hand already needs no pass of the delivery loop
        request.app[wakeups_key].job_changed(job_id, deliverable=finished.deliverable and finished.leased is None)
        _observe(request, finished, meta)
        log.info("job %s %s by %s (%d detections)", job_id, finished.status, meta.worker, len(meta.detections))
    return answer(ResultAck(job_id=job_id, outcome=outcome.value))


@endpoints.post(
    "/v1/worker/jobs/{job_id}/progress",
    auth="worker",
    ok={200: ProgressAck},
    request=ClipProgress,
    params=(JOB_ID, *SIGNED),
)
async def post_progress(request: web.Request) -> web.Response:
    """Workers: how far a clip is ("frame 40 of 120"), shown in its chat's status message; kept only while the job
    is in the worker's hands (``recorded`` false otherwise: a worker need not retry it)."""
    job_id, link_gen = _verify(request, Action.PROGRESS)
    body = await json_body(request, ClipProgress, 'Send {"done": 40, "total": 120}.')
    if body.done > body.total:
        raise BadRequest("done must not be more than total.", code=ErrorCode.BAD_BODY)
    recorded = await request.app[database_key].write(
        lambda session: transitions.record_progress(
            session, job_id, done=body.done, total=body.total, link_gen=link_gen
        )
    )
    if recorded:
        request.app[wakeups_key].job_changed(job_id)  # the progress updater looks again
    return answer(ProgressAck(job_id=job_id, recorded=recorded))


def _check_image(meta: ResultMeta, image: bytes | None) -> None:
    """A success carries what it says it does: the annotated JPEG, or a clip's MP4 or GIF with its summary."""
    if meta.content_type == "image/jpeg":
        if image is None or sniff(image) != "JPEG":
            raise BadRequest("A successful result needs the annotated JPEG as 'image'.", code=ErrorCode.NO_IMAGE)
        return
    expected = "mp4" if meta.content_type == "video/mp4" else "gif"
    if image is None or clips.sniff(image) != expected or meta.clip is None:
        raise BadRequest(
            f"A clip's result needs its animation ({meta.content_type}) as 'image' and its summary in 'clip'.",
            code=ErrorCode.NO_IMAGE,
        )


def _refusal(meta: ResultMeta) -> dict[str, float] | None:
    """A clip the worker would not take: the limit it passed and what it is (for the person's sentence)."""
    if meta.ok or not (meta.error_code or "").startswith("clip_"):
        return None
    found = {"limit": meta.limit, "value": meta.value}
    return {name: value for name, value in found.items() if value is not None}


def _observe(request: web.Request, finished: Finished, meta: ResultMeta) -> None:
    stages = finished.stages
    request.app[metrics_key].observe_finished(finished.status, stages, meta.model, meta.inference_ms)
    processing = stages.get("processing")
    if processing is not None:
        request.app[pace_key].observe(processing)


async def _read_result(request: web.Request) -> tuple[ResultMeta, bytes | None]:
    if not is_multipart(request):
        raise BadRequest("Send the result as multipart: 'meta' JSON and 'image'.", code=ErrorCode.MULTIPART_REQUIRED)
    fields = await read_form(request, {"meta": META_CAP, "image": MAX_RESULT_BYTES})
    if "meta" not in fields:
        raise BadRequest("The 'meta' JSON part is missing.", code=ErrorCode.NO_META)
    try:
        return ResultMeta.model_validate_json(fields["meta"]), fields.get("image")
    except ValidationError as exc:
        raise BadRequest(f"The result meta is not valid: {first_error(exc)}.", code=ErrorCode.BAD_META) from None
