"""How a job looks to its sender: the :class:`JobView` of ``GET /v1/jobs/{id}``, every sentence in their language."""

from __future__ import annotations

from urllib.parse import urlencode

from db.models import ACTIVE, WAITING, Job, Webhook
from queue_gateway import words
from queue_gateway.public import texts
from queue_gateway.public.contract import DetectionOut, ImageInfo, JobError, JobView, Timings, WebhookView
from queue_gateway.signing import Action, Signer
from queue_gateway.typed_job import TypedJob

STAGES = ("received", "queued", "processing", "done", "failed", "dead", "cancelled", "delivered")


def view_link(signer: Signer, base: str, job_id: str, suffix: str, *, expires: int) -> str:
    """A signed link to a job's status (``suffix`` "") or result ("/result") on the gateway at ``base``."""
    query = urlencode({"exp": expires, "sig": signer.sign(Action.VIEW, job_id, expires)})
    return f"{base}/v1/jobs/{job_id}{suffix}?{query}"


def _span(start: float | None, end: float | None) -> float | None:
    return round(end - start, 3) if start is not None and end is not None else None


def timings(job: Job) -> Timings:
    finished = job.done_at or job.failed_at or job.dead_at
    return Timings(
        queue_wait_s=_span(job.received_at, job.processing_at),
        processing_s=_span(job.processing_at, job.done_at or job.failed_at),
        inference_ms=round(job.inference_ms, 1) if job.inference_ms is not None else None,
        total_s=_span(job.received_at, finished),
        delivered_after_s=_span(job.received_at, job.delivered_at),
    )


def job_view(
    typed: TypedJob,
    *,
    position: int,
    eta_s: float,
    language: str | None,
    status_url: str,
    result_url: str,
    crops_url: str | None = None,
    no_worker: bool = False,
    webhook: Webhook | None = None,
) -> JobView:
    """The job as its sender sees it, in ``language`` (the one the request asked for; else the job's own);
    ``no_worker``: none has been running for a while (a photo in line says so, and no estimate is made up)."""
    job = typed.row
    lang = language or typed.language
    active = job.status in ACTIVE
    waiting_for_worker = no_worker and job.status in WAITING
    detections = [DetectionOut.model_validate(d) for d in job.detections] if job.detections is not None else None
    error = None
    if job.error_code:
        error = JobError(code=job.error_code, message=job.error, text=words.failure(job, lang))
    return JobView(
        job_id=job.id,
        status=job.status,
        finished=not active,
        platform=job.platform,
        position=position,
        eta_s=None if waiting_for_worker else round(eta_s, 1) if active else 0.0,
        waiting_for_worker=waiting_for_worker,
        attempts=job.attempts,
        cache_hit=job.cache_hit,
        language=lang,
        status_text=words.job_status(job, position, eta_s, lang, no_worker=waiting_for_worker),
        image=ImageInfo(format=job.image_format, width=job.width, height=job.height),
        params=typed.params,
        timestamps={stage: getattr(job, f"{stage}_at") for stage in STAGES},
        timings=timings(job),
        status_url=status_url,
        result_url=result_url,
        crops_url=crops_url if detections and job.purged_at is None else None,
        detections=detections,
        caption=words.caption(job, lang) if job.detections is not None else None,
        labels={d.label: texts.label(d.label, lang) for d in detections or []},
        model=job.model if job.detections is not None else None,
        error=error,
        webhook=_webhook(webhook) if webhook is not None else None,
        rerun_of=job.rerun_of,
    )


def _webhook(hook: Webhook) -> WebhookView:
    return WebhookView(
        url=hook.url, state=hook.state, attempts=hook.attempts, event_id=hook.event_id,
        last_status=hook.last_status, next_attempt_at=hook.next_attempt_at, delivered_at=hook.delivered_at,
    )  # fmt: skip
