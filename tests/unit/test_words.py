"""The gateway's sentences (``queue_gateway.words``): rendered once, in the person's language."""

from __future__ import annotations

from db.models import Job, JobStatus
from db.stats import Overview
from queue_gateway import words
from queue_gateway.public import texts
from queue_gateway.public.contract import DeadJob, QueueNow


def job(status: JobStatus, **values: object) -> Job:
    row = Job(id="j", status=status, platform="telegram", received_at=100.0, **values)
    return row


def test_a_failure_names_its_reason_in_the_persons_words() -> None:
    for code, reason in [("bad_image", "bad_image"), ("corrupt", "bad_image"), ("worker_crash", "reason_crashed"),
                         ("timeout", "reason_timeout")]:  # fmt: skip
        failed = job(JobStatus.FAILED, error_code=code, error="the worker's own words")
        assert words.caption(failed, "ru") == texts.text("failed", "ru", reason=texts.text(reason, "ru"))
    dead = job(JobStatus.DEAD, error_code="dead", error="x")
    assert words.failure(dead, None) == texts.text("dead", reason=texts.text("reason_crashed"))
    unknown = job(JobStatus.FAILED, error_code="model_error", error="the detector could not process it")
    assert words.failure(unknown, None) == texts.text("failed", reason="the detector could not process it")


def test_a_jobs_status_says_where_it_is() -> None:
    assert words.job_status(job(JobStatus.QUEUED), 3, 4.2, "ru") == texts.queued_text(3, 4.2, "ru")
    assert words.job_status(job(JobStatus.QUEUED), 0, 0.0, None) == texts.text("queued_now")
    assert words.job_status(job(JobStatus.PROCESSING), 0, 0.0, "ru") == texts.text("processing", "ru")
    done = job(JobStatus.DONE, done_at=101.5, detections=[])
    assert words.job_status(done, 0, 0.0, None) == texts.text("done_in", seconds=1.5)
    assert words.job_status(job(JobStatus.CANCELLED), 0, 0.0, "ru") == texts.text("cancelled", "ru")


def test_an_album_is_done_when_all_its_photos_are_and_cancelled_when_all_were() -> None:
    done = [job(JobStatus.DONE, done_at=103.0, detections=[]), job(JobStatus.DONE, done_at=101.0, detections=[])]
    assert words.status_text(done, None) == texts.text("done_in", seconds=3.0)
    mixed = [done[0], job(JobStatus.FAILED, failed_at=102.0, error_code="bad_image")]
    assert words.status_text(mixed, None) == texts.text("failed_short")
    assert words.status_text([job(JobStatus.CANCELLED)], "ru") == texts.text("cancelled", "ru")


def test_the_stats_block_and_the_dead_list() -> None:
    latency = {m: {"p50": 2.0, "p95": 2.0, "count": 8} for m in ("queue_wait", "processing", "end_to_end")}
    found = Overview(
        since=0,
        until=1,
        events={"received": 12, "done": 8, "delivered": 8, "failed": 3, "dead": 1},
        received_by_platform={"telegram": 6, "discord": 5, "http": 1},
        latency=latency,  # type: ignore[arg-type]
        top_labels=[("person", 5), ("cat", 3)],
        dead_waiting=1001,
    )
    lines = words.stats_lines(found, QueueNow(depth=4, consumers=2), "ru")
    assert lines["jobs"] == texts.text("stats_jobs", "ru", received=12, done=8, delivered=8, failed=3, dead=1)
    assert lines["by_platform"] == texts.text("stats_by_platform", "ru", platforms="telegram 6, discord 5, http 1")
    assert lines["queue"] == texts.text("stats_queue", "ru", depth=4, consumers=2)
    assert lines["dead"] == texts.text("stats_dead", "ru", dead="1000+", hits=0)
    assert texts.label("person", "ru") in lines["top"]
    assert words.stats_lines(found, None, None)["queue"] == texts.text("stats_queue_unknown")
    dead = [DeadJob(job_id="abcdef0123456789", platform="discord", reason="x", attempts=3, dead_at=1.0)]
    assert words.dead_list(dead, None).splitlines() == [texts.ntext("dlq_header", 1), "• abcdef01 (discord): x"]
    assert words.dead_list([], "ru") == texts.text("dlq_empty", "ru")
