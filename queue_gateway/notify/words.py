"""What a delivery says: captions, the status message's last word, the reason a photo failed."""

from __future__ import annotations

from collections.abc import Sequence

from db.models import Job, JobStatus
from queue_gateway.public import texts


def caption(job: Job, language: str | None) -> str:
    """``"4 persons, 1 bus"``, or why the photo could not be processed."""
    if job.detections is not None:
        return texts.caption(job.detections, language)
    key = "dead" if job.status == JobStatus.DEAD else "failed"
    return texts.text(key, language, reason=reason(job.error_code, job.error, language))


def reason(code: str | None, detail: str | None, language: str | None) -> str:
    """A person's words for an error code; the worker's own sentence for codes the catalogue does not know."""
    if code in ("bad_image", "corrupt"):
        return texts.text("bad_image", language)
    if code == "worker_crash" or code == "dead":
        return texts.text("reason_crashed", language)
    if code == "timeout":
        return texts.text("reason_timeout", language)
    return detail or texts.text("reason_unknown", language)


def status_text(members: Sequence[Job], language: str | None) -> str:
    """The status message's last word: "Done in 1.4 s.", "Cancelled.", or "see the reply below"."""
    if all(m.status == JobStatus.CANCELLED for m in members):
        return texts.text("cancelled", language)
    if all(m.detections is not None for m in members if m.status != JobStatus.CANCELLED):
        finished = max((m.done_at or m.failed_at or m.dead_at or m.received_at) for m in members)
        started = min(m.received_at for m in members)
        return texts.text("done_in", language, seconds=finished - started)
    return texts.text("failed_short", language)
