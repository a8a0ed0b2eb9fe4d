"""How a job looks to its client: the JSON body of ``GET /v1/jobs/{id}``."""

from __future__ import annotations

from typing import Any

from db.models import ACTIVE, Job
from queue_gateway.public import texts

STAGES = ("received", "queued", "processing", "done", "failed", "dead", "cancelled", "delivered")


def _span(start: float | None, end: float | None) -> float | None:
    return round(end - start, 3) if start is not None and end is not None else None


def timings(job: Job) -> dict[str, float | None]:
    finished = job.done_at or job.failed_at or job.dead_at
    return {
        "queue_wait_s": _span(job.received_at, job.processing_at),
        "processing_s": _span(job.processing_at, job.done_at or job.failed_at),
        "inference_ms": round(job.inference_ms, 1) if job.inference_ms is not None else None,
        "total_s": _span(job.received_at, finished),
        "delivered_after_s": _span(job.received_at, job.delivered_at),
    }


def job_json(job: Job, *, position: int, status_url: str, result_url: str) -> dict[str, Any]:
    lang = (job.params or {}).get("language") or (job.origin or {}).get("language")
    view: dict[str, Any] = {
        "job_id": job.id,
        "status": job.status,
        "platform": job.platform,
        "position": position,
        "attempts": job.attempts,
        "cache_hit": job.cache_hit,
        "image": {"format": job.image_format, "width": job.width, "height": job.height},
        "params": job.params,
        "timestamps": {stage: getattr(job, f"{stage}_at") for stage in STAGES},
        "timings": timings(job),
        "status_url": status_url,
        "result_url": result_url,
    }
    if job.detections is not None:
        view["detections"] = job.detections
        view["caption"] = texts.caption(job.detections, lang)
        view["model"] = job.model
    if job.error_code:
        view["error"] = {"code": job.error_code, "message": job.error}
    view["finished"] = job.status not in ACTIVE
    return view
