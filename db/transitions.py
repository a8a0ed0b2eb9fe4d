"""A job's way through the workers: each transition is one guarded UPDATE, so a repeat changes nothing.

Each function runs inside the caller's transaction, and bumps the stats rollups in it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db import rollup
from db.models import ACTIVE, FINISHED, Blob, Job, JobStatus, WorkerSeen
from db.queries import CHAT_PLATFORMS, Outcome, delivery_time, label_counts, now, rowcount


async def start_attempt(session: AsyncSession, job_id: str, *, worker: str, max_attempts: int) -> Outcome:
    """A worker fetched the input: count the attempt, or give up on a job that keeps failing."""
    job = await session.get(Job, job_id)
    if job is None:
        return Outcome.NOT_FOUND
    if job.status in FINISHED or job.purged_at is not None:
        return Outcome.GONE
    at = now()
    if job.attempts >= max_attempts:
        reason = f"it stopped the worker {job.attempts} times in a row"
        await mark_dead(session, job_id, reason=reason, code="worker_crash")
        return Outcome.EXHAUSTED
    await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(ACTIVE))
        .values(
            status=JobStatus.PROCESSING,
            attempts=Job.attempts + 1,
            processing_at=at,
            queued_at=func.coalesce(Job.queued_at, at),
            worker=worker,
        )
    )
    return Outcome.APPLIED


async def complete(
    session: AsyncSession,
    job_id: str,
    *,
    detections: list[dict[str, Any]],
    model: str,
    worker: str,
    inference_ms: float,
    image: bytes,
    content_type: str = "image/jpeg",
) -> Outcome:
    """Record a successful result; only the first result for a job counts."""
    at = now()
    values = dict(
        status=JobStatus.DONE,
        done_at=at,
        detections=detections,
        model=model,
        worker=worker,
        inference_ms=inference_ms,
        error=None,
        error_code=None,
        next_delivery_at=delivery_time(at),
    )
    if not await _move_on(session, job_id, values):
        return await _why_not(session, job_id)
    session.add(
        Blob(
            job_id=job_id,
            kind="result",
            content_type=content_type,
            data=image,
            size=len(image),
            created_at=at,
        )
    )
    row = (
        await session.execute(select(Job.platform, Job.received_at, Job.processing_at).where(Job.id == job_id))
    ).one()
    await rollup.count_event(session, at, row.platform, "done")
    await rollup.observe(session, at, "queue_wait", _span(row.received_at, row.processing_at))
    await rollup.observe(session, at, "processing", _span(row.processing_at, at))
    if row.platform not in CHAT_PLATFORMS:  # chat jobs end when the chat has the answer (delivered())
        await rollup.observe(session, at, "end_to_end", at - row.received_at)
    await rollup.count_labels(session, at, label_counts(detections))
    return Outcome.APPLIED


def _span(start: float | None, end: float | None) -> float | None:
    return end - start if start is not None and end is not None else None


async def saw_worker(session: AsyncSession, name: str, model: str | None = None) -> None:
    """Remember that this worker was alive just now (for "workers seen in the last minute")."""
    at = now()
    values: dict[str, Any] = {"last_seen_at": at}
    if model:
        values["model"] = model
    result = await session.execute(update(WorkerSeen).where(WorkerSeen.name == name).values(values))
    if not rowcount(result):
        try:
            async with session.begin_nested():
                session.add(WorkerSeen(name=name, last_seen_at=at, model=model))
        except IntegrityError:
            pass  # another request added it a moment ago


async def fail(session: AsyncSession, job_id: str, *, code: str, message: str, worker: str | None = None) -> Outcome:
    """A final error (bad input, a model that cannot run it): the person is told why."""
    at = now()
    values: dict[str, Any] = {
        "status": JobStatus.FAILED,
        "failed_at": at,
        "error_code": code,
        "error": message,
        "next_delivery_at": delivery_time(at),
    }
    if worker:
        values["worker"] = worker
    if not await _move_on(session, job_id, values):
        return await _why_not(session, job_id)
    await rollup.count_event(session, at, await _platform(session, job_id), "failed")
    return Outcome.APPLIED


async def mark_dead(session: AsyncSession, job_id: str, *, reason: str, code: str = "dead") -> Outcome:
    """Deliveries exhausted: park the job for an admin; the person is told."""
    at = now()
    values = dict(
        status=JobStatus.DEAD,
        dead_at=at,
        error_code=code,
        error=reason,
        next_delivery_at=delivery_time(at),
    )
    if not await _move_on(session, job_id, values):
        return await _why_not(session, job_id)
    await rollup.count_event(session, at, await _platform(session, job_id), "dead")
    return Outcome.APPLIED


async def _platform(session: AsyncSession, job_id: str) -> str:
    return str(await session.scalar(select(Job.platform).where(Job.id == job_id)))


async def _move_on(session: AsyncSession, job_id: str, values: dict[str, Any]) -> bool:
    """The guarded UPDATE: only a job that still waits for a worker moves to a final state."""
    result = await session.execute(update(Job).where(Job.id == job_id, Job.status.in_(ACTIVE)).values(values))
    return bool(rowcount(result))


async def _why_not(session: AsyncSession, job_id: str) -> Outcome:
    exists = await session.scalar(select(func.count()).select_from(Job).where(Job.id == job_id))
    return Outcome.REPEATED if exists else Outcome.NOT_FOUND
