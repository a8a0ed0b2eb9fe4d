"""How a job looks to its sender: the :class:`JobView` of ``GET /v1/jobs/{id}``, every sentence in their language."""

from __future__ import annotations

from db.models import ACTIVE, Job
from queue_gateway import words
from queue_gateway.public import texts
from queue_gateway.public.contract import DetectionOut, ImageInfo, JobError, JobView, Timings
from queue_gateway.typed_job import TypedJob

STAGES = ("received", "queued", "processing", "done", "failed", "dead", "cancelled", "delivered")


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
    typed: TypedJob, *, position: int, eta_s: float, language: str | None, status_url: str, result_url: str
) -> JobView:
    """The job as its sender sees it, in ``language`` (the one the request asked for; else the job's own)."""
    job = typed.row
    lang = language or typed.language
    active = job.status in ACTIVE
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
        eta_s=round(eta_s, 1) if active else 0.0,
        attempts=job.attempts,
        cache_hit=job.cache_hit,
        language=lang,
        status_text=words.job_status(job, position, eta_s, lang),
        image=ImageInfo(format=job.image_format, width=job.width, height=job.height),
        params=typed.params,
        timestamps={stage: getattr(job, f"{stage}_at") for stage in STAGES},
        timings=timings(job),
        status_url=status_url,
        result_url=result_url,
        detections=detections,
        caption=texts.caption(job.detections, lang) if job.detections is not None else None,
        labels={d.label: texts.label(d.label, lang) for d in detections or []},
        model=job.model if job.detections is not None else None,
        error=error,
    )
