"""Every sentence the gateway says about a job or the system, rendered once, here, in the person's language: the
caption, the status message's texts, why a photo failed, the stats and the dead-letter list.

Delivery, the progress updater and the HTTP API speak from these functions; the bots and the web page show what
the gateway sent (``JobView.status_text``, ``StatsResponse.text`` …) and never format such a sentence themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

from db.models import Job, JobStatus
from db.stats import Overview
from queue_gateway.public import texts
from queue_gateway.public.contract import DeadJob, QueueNow

DEAD_CAP = 1000  # "1000+" dead jobs is all an operator needs to read


def caption(job: Job, language: str | None) -> str:
    """``"4 persons, 1 bus"`` (a re-run says with what), or why the photo could not be processed."""
    if job.detections is not None:
        found = texts.caption(job.detections, language)
        if job.rerun_mode:
            return texts.text("rerun_caption", language, mode=rerun_mode(job.rerun_mode, language), caption=found)
        return found
    return failure(job, language)


def rerun_mode(mode: str, language: str | None) -> str:
    """``"a lower confidence"``: how a photo runs again, as a sentence says it."""
    return texts.text(f"rerun_{mode}", language)


def rerun_button(number: int, mode: str, language: str | None) -> str:
    """``"#2 · Lower"``: a re-run button under /history."""
    return texts.text("rerun_button", language, number=number, mode=texts.text(f"rerun_{mode}_button", language))


def age(seconds: float, language: str | None) -> str:
    """``"5 min"``, ``"3 h"``, ``"2 days"``: how long ago."""
    minutes = max(1, int(seconds // 60))
    if minutes < 60:
        return texts.ntext("age_minutes", minutes, language)
    if minutes < 48 * 60:
        return texts.ntext("age_hours", minutes // 60, language)
    return texts.ntext("age_days", minutes // (24 * 60), language)


def history_line(job: Job, number: int, at: float, language: str | None) -> str:
    """One photo of /history: ``"1. 2 h ago — 4 persons, 1 bus"``, and whether its photo is gone."""
    if job.detections is not None:
        what = texts.caption(job.detections, language)
    elif job.status in (JobStatus.RECEIVED, JobStatus.QUEUED, JobStatus.PROCESSING):
        what = texts.text("history_in_line", language)
    elif job.status == JobStatus.CANCELLED:
        what = texts.text("cancelled", language)
    else:
        what = texts.text("history_failed", language)
    if job.rerun_of:
        what = texts.text("history_rerun", language, what=what)
    if job.purged_at is not None:
        what = texts.text("history_gone", language, what=what)
    return texts.text("history_line", language, number=number, age=age(at - job.received_at, language), what=what)


def history(lines: Sequence[str], language: str | None) -> str:
    """/history's text: a header and a line per photo (or that there is none)."""
    if not lines:
        return texts.text("history_empty", language)
    return "\n".join([texts.ntext("history_header", len(lines), language), *lines])


def failure(job: Job, language: str | None) -> str:
    """``"Sorry, I couldn't process that photo: …"`` (or the dead letter's longer sentence)."""
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


def waiting(
    position: int, eta_s: float, language: str | None, *, processing: bool = False, no_worker: bool = False
) -> str:
    """A photo's place in line and estimate (``"Queued — #3 in line, about 4 s."``), "Working on it…", or (no
    worker running) that it is safe and waits for one."""
    if processing:
        return texts.text("processing", language)
    if no_worker:
        return texts.text("no_worker", language)
    if position <= 0:
        return texts.text("queued_now", language)
    return texts.queued_text(position, eta_s, language)


def status_text(members: Sequence[Job], language: str | None) -> str:
    """The status message's last word: "Done in 1.4 s.", "Cancelled.", or "see the reply below"."""
    if all(m.status == JobStatus.CANCELLED for m in members):
        return texts.text("cancelled", language)
    if all(m.detections is not None for m in members if m.status != JobStatus.CANCELLED):
        finished = max((m.done_at or m.failed_at or m.dead_at or m.received_at) for m in members)
        started = min(m.received_at for m in members)
        return texts.text("done_in", language, seconds=finished - started)
    return texts.text("failed_short", language)


def job_status(job: Job, position: int, eta_s: float, language: str | None, *, no_worker: bool = False) -> str:
    """What one job's status says right now, as a chat's status message would."""
    if job.status in (JobStatus.RECEIVED, JobStatus.QUEUED):
        return waiting(position, eta_s, language, no_worker=no_worker)
    if job.status == JobStatus.PROCESSING:
        return waiting(0, 0.0, language, processing=True)
    if job.status in (JobStatus.FAILED, JobStatus.DEAD):
        return failure(job, language)
    return status_text([job], language)


def stats_lines(
    found: Overview, queue: QueueNow | None, language: str | None, *, no_worker_for: float | None = None
) -> dict[str, str]:
    """The /stats block, line by line: counts, latency, queue, workers (and how long none has run), failures, top
    classes."""
    lang = language
    events = found.events
    by_platform = ", ".join(f"{p} {n}" for p, n in sorted(found.received_by_platform.items(), key=lambda kv: -kv[1]))
    top = ", ".join(f"{texts.label(label, lang)} {n}" for label, n in found.top_labels) or "-"
    stages = ", ".join(
        f"{texts.text('stage_' + name, lang)} {_seconds(found.latency[name]['p50'])}/"
        f"{_seconds(found.latency[name]['p95'])}"
        for name in ("queue_wait", "processing", "end_to_end")
    )
    return {
        "header": texts.text("stats_header", lang),
        "jobs": texts.text(
            "stats_jobs",
            lang,
            received=events.get("received", 0),
            done=events.get("done", 0),
            delivered=events.get("delivered", 0),
            failed=events.get("failed", 0),
            dead=events.get("dead", 0),
        ),
        "by_platform": texts.text("stats_by_platform", lang, platforms=by_platform or "-"),
        "in_progress": texts.text("stats_in_progress", lang, count=sum(found.waiting.values())),
        "latency": texts.text("stats_latency", lang, stages=stages),
        "queue": texts.text("stats_queue", lang, depth=queue.depth, consumers=queue.consumers)
        if queue
        else texts.text("stats_queue_unknown", lang),
        "workers": texts.text("stats_workers", lang, count=len(found.workers)),
        **(
            {"no_worker": texts.text("stats_no_worker", lang, duration=texts.eta(no_worker_for, lang))}
            if no_worker_for is not None
            else {}
        ),
        "dead": texts.text("stats_dead", lang, dead=_capped(found.dead_waiting), hits=events.get("cache_hit", 0)),
        "top": texts.text("stats_top", lang, top=top),
    }


def dead_summary(count: int, language: str | None) -> str:
    return texts.ntext("dlq_header", count, language) if count else texts.text("dlq_empty", language)


def dead_list(jobs: Sequence[DeadJob], language: str | None) -> str:
    """The dead-letter list as /dlq shows it."""
    if not jobs:
        return dead_summary(0, language)
    lines = [dead_summary(len(jobs), language)]
    lines += [f"• {job.job_id[:8]} ({job.platform}): {job.reason or '?'}" for job in jobs]
    return "\n".join(lines)


def forgotten(count: int, language: str | None) -> str:
    """What /forget says."""
    return texts.ntext("forgot", count, language) if count else texts.text("forgot_none", language)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s" if value < 100 else f"{value / 60:.0f}m"


def _capped(count: int) -> str:
    return f"{DEAD_CAP}+" if count > DEAD_CAP else str(count)


def crop_text(label: str, confidence: float, language: str | None) -> str:
    """One cut-out object's caption: ``"bus 94%"``."""
    return texts.text("crop_text", language, label=texts.label(label, language), confidence=confidence)


def crops_caption(count: int, too_small: int, more: int, language: str | None) -> str:
    """What the album of cut-out objects says: how many, and how many were left out."""
    if not count:
        return texts.text("objects_none", language)
    parts = [texts.ntext("objects_caption", count, language)]
    if too_small:
        parts.append(texts.ntext("objects_too_small", too_small, language))
    if more:
        parts.append(texts.ntext("objects_more", more, language))
    return " ".join(parts)
