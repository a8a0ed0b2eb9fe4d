"""Small query functions: every job transition is one guarded UPDATE, so repeats change nothing.

Each function runs inside the caller's session and transaction; the caller commits.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db import rollup
from db.models import ACTIVE, FINISHED, Blob, Job, JobStatus, OutboxEntry, WorkerSeen

CHAT_PLATFORMS = ("telegram", "discord")
"""Jobs from these platforms are delivered back to their chat by the gateway."""


def now() -> float:
    return time.time()


@dataclass(slots=True)
class NewJob:
    """Everything the gateway knows about a job when it accepts it."""

    id: str
    platform: str
    image: bytes
    image_sha256: str
    image_format: str
    content_type: str
    width: int
    height: int
    params: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, Any] | None = None
    idempotency_key: str | None = None
    user_ref: str | None = None
    group_key: str | None = None
    group_size: int = 1
    group_index: int = 0


class Outcome(Enum):
    APPLIED = "applied"  # the transition happened now
    REPEATED = "repeated"  # the job had already reached (or passed) that state: nothing changed
    NOT_FOUND = "not_found"
    GONE = "gone"  # finished (or purged) earlier: there is nothing left to do
    EXHAUSTED = "exhausted"  # too many attempts: the job was marked dead


async def find_by_idempotency_key(session: AsyncSession, key: str) -> Job | None:
    return (await session.execute(select(Job).where(Job.idempotency_key == key))).scalar_one_or_none()


async def add_job(session: AsyncSession, new: NewJob, *, at: float | None = None, outbox: bool = True) -> Job:
    """Stage a job, its input image and its outbox entry (one transaction with the caller's commit)."""
    at = now() if at is None else at
    job = Job(
        id=new.id,
        status=JobStatus.RECEIVED,
        platform=new.platform,
        idempotency_key=new.idempotency_key,
        user_ref=new.user_ref,
        origin=new.origin,
        params=new.params,
        group_key=new.group_key,
        group_size=new.group_size,
        group_index=new.group_index,
        image_sha256=new.image_sha256,
        image_format=new.image_format,
        width=new.width,
        height=new.height,
        attempts=0,
        delivery_attempts=0,
        cache_hit=False,
        received_at=at,
    )
    session.add(job)
    await session.flush()  # the job row first: the image and the outbox entry refer to it
    session.add(
        Blob(
            job_id=new.id,
            kind="input",
            content_type=new.content_type,
            data=new.image,
            size=len(new.image),
            created_at=at,
        )
    )
    if outbox:
        session.add(OutboxEntry(job_id=new.id, created_at=at, available_at=at, attempts=0))
    await rollup.count_event(session, at, new.platform, "received")
    return job


async def get_job(session: AsyncSession, job_id: str) -> Job | None:
    return await session.get(Job, job_id)


async def get_blob(session: AsyncSession, job_id: str, kind: str) -> Blob | None:
    return await session.get(Blob, (job_id, kind))


async def queue_position(session: AsyncSession, job: Job) -> int:
    """1 + the number of jobs still waiting for a worker that arrived before this one."""
    if job.status not in (JobStatus.RECEIVED, JobStatus.QUEUED):
        return 0
    ahead = await session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.status.in_([JobStatus.RECEIVED, JobStatus.QUEUED]), Job.received_at < job.received_at)
    )
    return int(ahead or 0) + 1


# --- outbox ----------------------------------------------------------------------------------------------


async def due_outbox(session: AsyncSession, *, limit: int, older_than: float) -> list[OutboxEntry]:
    """Entries nobody published yet, oldest first (``older_than`` skips ones a live request is publishing)."""
    rows = await session.execute(
        select(OutboxEntry).where(OutboxEntry.available_at <= older_than).order_by(OutboxEntry.id).limit(limit)
    )
    return list(rows.scalars())


async def mark_published(session: AsyncSession, job_ids: Sequence[str]) -> None:
    """The broker confirmed these jobs: drop their outbox entries and move them to ``queued``."""
    if not job_ids:
        return
    at = now()
    await session.execute(delete(OutboxEntry).where(OutboxEntry.job_id.in_(job_ids)))
    await session.execute(
        update(Job)
        .where(Job.id.in_(job_ids), Job.status == JobStatus.RECEIVED)
        .values(status=JobStatus.QUEUED, queued_at=at)
    )


async def postpone_outbox(session: AsyncSession, job_ids: Sequence[str], delay: float) -> None:
    await session.execute(
        update(OutboxEntry)
        .where(OutboxEntry.job_id.in_(job_ids))
        .values(available_at=now() + delay, attempts=OutboxEntry.attempts + 1)
    )


async def withdraw(session: AsyncSession, job_id: str) -> bool:
    """Remove a job the broker refused (queue full) before anyone saw it; False if it had moved on."""
    result = await session.execute(delete(Job).where(Job.id == job_id, Job.status == JobStatus.RECEIVED))
    return bool(_rowcount(result))


# --- worker side ----------------------------------------------------------------------------------------


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
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(ACTIVE))
        .values(
            status=JobStatus.DONE,
            done_at=at,
            detections=detections,
            model=model,
            worker=worker,
            inference_ms=inference_ms,
            error=None,
            error_code=None,
            next_delivery_at=_delivery_time(at),
        )
    )
    if not _rowcount(result):
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
    await rollup.count_labels(session, at, _label_counts(detections))
    return Outcome.APPLIED


def _span(start: float | None, end: float | None) -> float | None:
    return end - start if start is not None and end is not None else None


def _label_counts(detections: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for detection in detections:
        label = str(detection.get("label", "?"))
        counts[label] = counts.get(label, 0) + 1
    return counts


async def saw_worker(session: AsyncSession, name: str, model: str | None = None) -> None:
    """Remember that this worker was alive just now (for "workers seen in the last minute")."""
    at = now()
    values: dict[str, Any] = {"last_seen_at": at}
    if model:
        values["model"] = model
    result = await session.execute(update(WorkerSeen).where(WorkerSeen.name == name).values(values))
    if not _rowcount(result):
        try:
            async with session.begin_nested():
                session.add(WorkerSeen(name=name, last_seen_at=at, model=model))
        except IntegrityError:
            pass  # another request added it a moment ago


async def cached_result(session: AsyncSession, sha256: str, params: dict[str, Any]) -> Job | None:
    """A finished job for the same image and parameters whose annotated image is still stored."""
    rows = await session.execute(
        select(Job)
        .join(Blob, (Blob.job_id == Job.id) & (Blob.kind == "result"))
        .where(Job.image_sha256 == sha256, Job.status.in_([JobStatus.DONE, JobStatus.DELIVERED]))
        .order_by(Job.done_at.desc())
        .limit(5)
    )
    return next((job for job in rows.scalars() if job.params == params), None)


async def add_cached_job(session: AsyncSession, new: NewJob, source: Job) -> Job:
    """Record a job answered from an earlier identical one: done at once, no queue, no model."""
    at = now()
    job = await add_job(session, new, at=at, outbox=False)
    result = await session.get(Blob, (source.id, "result"))
    assert result is not None
    job.status = JobStatus.DONE
    job.cache_hit = True
    job.queued_at = job.processing_at = job.done_at = at
    job.detections = source.detections
    job.model = source.model
    job.worker = "cache"
    job.inference_ms = 0.0
    job.next_delivery_at = at if new.platform in CHAT_PLATFORMS else None
    session.add(
        Blob(
            job_id=new.id,
            kind="result",
            content_type=result.content_type,
            data=result.data,
            size=result.size,
            created_at=at,
        )
    )
    await rollup.count_event(session, at, new.platform, "done")
    await rollup.count_event(session, at, new.platform, "cache_hit")
    if new.platform not in CHAT_PLATFORMS:
        await rollup.observe(session, at, "end_to_end", 0.0)
    await rollup.count_labels(session, at, _label_counts(list(source.detections or [])))
    return job


async def fail(session: AsyncSession, job_id: str, *, code: str, message: str, worker: str | None = None) -> Outcome:
    """A final error (bad input, a model that cannot run it): the person is told why."""
    at = now()
    values: dict[str, Any] = {
        "status": JobStatus.FAILED,
        "failed_at": at,
        "error_code": code,
        "error": message,
        "next_delivery_at": _delivery_time(at),
    }
    if worker:
        values["worker"] = worker
    result = await session.execute(update(Job).where(Job.id == job_id, Job.status.in_(ACTIVE)).values(values))
    if not _rowcount(result):
        return await _why_not(session, job_id)
    await rollup.count_event(session, at, await _platform(session, job_id), "failed")
    return Outcome.APPLIED


async def mark_dead(session: AsyncSession, job_id: str, *, reason: str, code: str = "dead") -> Outcome:
    """Deliveries exhausted: park the job for an admin; the person is told."""
    at = now()
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(ACTIVE))
        .values(
            status=JobStatus.DEAD,
            dead_at=at,
            error_code=code,
            error=reason,
            next_delivery_at=_delivery_time(at),
        )
    )
    if not _rowcount(result):
        return await _why_not(session, job_id)
    await rollup.count_event(session, at, await _platform(session, job_id), "dead")
    return Outcome.APPLIED


async def _platform(session: AsyncSession, job_id: str) -> str:
    return str(await session.scalar(select(Job.platform).where(Job.id == job_id)))


async def _why_not(session: AsyncSession, job_id: str) -> Outcome:
    exists = await session.scalar(select(func.count()).select_from(Job).where(Job.id == job_id))
    return Outcome.REPEATED if exists else Outcome.NOT_FOUND


def _delivery_time(at: float) -> Any:
    """Chat jobs become due for delivery when they finish; HTTP clients fetch their own results."""
    return case((Job.platform.in_(CHAT_PLATFORMS), at), else_=None)


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


# --- listing -------------------------------------------------------------------------------------------


async def jobs_in_group(session: AsyncSession, group_key: str) -> list[Job]:
    rows = await session.execute(select(Job).where(Job.group_key == group_key).order_by(Job.group_index))
    return list(rows.scalars())


async def waiting_count(session: AsyncSession) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Job)
        .where(or_(Job.status == JobStatus.RECEIVED, Job.status == JobStatus.QUEUED))
    )
    return int(count or 0)


# --- delivery to chats ------------------------------------------------------------------------------------


async def due_deliveries(session: AsyncSession, *, at: float, limit: int) -> list[Job]:
    """Jobs whose delivery (or a step of it) is due and not leased by another delivery task."""
    rows = await session.execute(
        select(Job)
        .where(
            Job.next_delivery_at <= at,
            or_(Job.delivery_lease_until.is_(None), Job.delivery_lease_until < at),
        )
        .order_by(Job.next_delivery_at)
        .limit(limit)
    )
    return list(rows.scalars())


async def next_delivery_time(session: AsyncSession) -> float | None:
    value = await session.scalar(select(func.min(Job.next_delivery_at)))
    return float(value) if value is not None else None


async def lease(session: AsyncSession, job_ids: Sequence[str], *, at: float, seconds: float) -> bool:
    """Take the delivery lease on all these jobs, or on none (another task has one of them)."""
    result = await session.execute(
        update(Job)
        .where(Job.id.in_(job_ids), or_(Job.delivery_lease_until.is_(None), Job.delivery_lease_until < at))
        .values(delivery_lease_until=at + seconds)
    )
    if _rowcount(result) != len(job_ids):
        await session.rollback()
        return False
    return True


async def save_receipt(session: AsyncSession, job_ids: Sequence[str], receipt: dict[str, Any]) -> None:
    """Record what was already sent, at once: a retried delivery skips it (no duplicate messages)."""
    await session.execute(update(Job).where(Job.id.in_(job_ids)).values(delivery_receipt=receipt))


async def delivered(session: AsyncSession, job_ids: Sequence[str], receipt: dict[str, Any]) -> None:
    at = now()
    first_time = await session.execute(
        select(Job.platform, Job.received_at).where(Job.id.in_(job_ids), Job.status == JobStatus.DONE)
    )
    for platform, received_at in first_time:
        await rollup.count_event(session, at, platform, "delivered")
        await rollup.observe(session, at, "end_to_end", at - received_at)
    await session.execute(
        update(Job)
        .where(Job.id.in_(job_ids))
        .values(
            status=case((Job.status == JobStatus.DONE, JobStatus.DELIVERED), else_=Job.status),
            delivered_at=func.coalesce(Job.delivered_at, at),
            delivery_receipt=receipt,
            next_delivery_at=None,
            delivery_lease_until=None,
            delivery_error=None,
        )
    )


async def delivery_retry(session: AsyncSession, job_ids: Sequence[str], *, after: float, error: str) -> None:
    await session.execute(
        update(Job)
        .where(Job.id.in_(job_ids))
        .values(
            next_delivery_at=now() + after,
            delivery_lease_until=None,
            delivery_attempts=Job.delivery_attempts + 1,
            delivery_error=error[:500],
        )
    )


async def delivery_abandoned(session: AsyncSession, job_ids: Sequence[str], *, error: str) -> None:
    """Give up on telling the chat (blocked bot, deleted chat, too many failures); the job keeps its result."""
    await session.execute(
        update(Job)
        .where(Job.id.in_(job_ids))
        .values(next_delivery_at=None, delivery_lease_until=None, delivery_error=error[:500])
    )


async def park(session: AsyncSession, job_id: str) -> None:
    """An album member finished before the rest: the last one to finish brings the group's delivery."""
    await session.execute(update(Job).where(Job.id == job_id).values(next_delivery_at=None, delivery_lease_until=None))


async def set_status_message(session: AsyncSession, job_id: str, message_id: str) -> Job | None:
    """The bot posted its "queued" message; if the result already went out, make the status edit due now.

    ``delivered_at`` is judged by the UPDATE itself, as the row is written: judged from an earlier read, a delivery
    that finished in between (its own check for a status message having run before ours was written) left the
    status message unedited for good.
    """
    job = await session.get(Job, job_id)
    if job is None:
        return None
    origin = dict(job.origin or {})
    origin["status_message_id"] = message_id
    due = case((Job.delivered_at.is_not(None), now()), else_=Job.next_delivery_at)
    await session.execute(update(Job).where(Job.id == job_id).values(origin=origin, next_delivery_at=due))
    await session.refresh(job)
    return job


# --- operations -------------------------------------------------------------------------------------------


async def dead_jobs(session: AsyncSession, *, limit: int) -> list[Job]:
    rows = await session.execute(
        select(Job).where(Job.status == JobStatus.DEAD).order_by(Job.dead_at.desc()).limit(limit)
    )
    return list(rows.scalars())


async def requeue(session: AsyncSession, job_id: str) -> Outcome:
    """Give a dead (or failed) job another go from the start; it keeps its id and its chat."""
    job = await session.get(Job, job_id)
    if job is None:
        return Outcome.NOT_FOUND
    if job.status not in (JobStatus.DEAD, JobStatus.FAILED):
        return Outcome.REPEATED
    if await session.get(Blob, (job_id, "input")) is None:
        return Outcome.GONE
    at = now()
    await session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(
            status=JobStatus.RECEIVED,
            attempts=0,
            error=None,
            error_code=None,
            queued_at=None,
            processing_at=None,
            failed_at=None,
            dead_at=None,
            delivered_at=None,
            next_delivery_at=None,
            delivery_lease_until=None,
            delivery_receipt=None,
            delivery_attempts=0,
            delivery_error=None,
        )
    )
    session.add(OutboxEntry(job_id=job_id, created_at=at, available_at=at, attempts=0))
    return Outcome.APPLIED


async def forget_user(session: AsyncSession, user_ref: str) -> int:
    """Delete a person's images and results now; the bare job rows stay (anonymous) for stats."""
    job_ids = list((await session.execute(select(Job.id).where(Job.user_ref == user_ref))).scalars())
    if not job_ids:
        return 0
    at = now()
    await session.execute(delete(Blob).where(Blob.job_id.in_(job_ids)))
    await session.execute(
        update(Job)
        .where(Job.id.in_(job_ids), Job.status.in_(ACTIVE))
        .values(status=JobStatus.FAILED, failed_at=at, error_code="forgotten", error="deleted at the sender's request")
    )
    await session.execute(
        update(Job)
        .where(Job.id.in_(job_ids))
        .values(detections=None, origin=None, user_ref=None, purged_at=at, next_delivery_at=None)
    )
    await session.execute(delete(OutboxEntry).where(OutboxEntry.job_id.in_(job_ids)))
    return len(job_ids)


async def purge_blobs(session: AsyncSession, *, older_than: float, limit: int = 500) -> int:
    """Delete stored images older than the retention cut-off (a batch); the job rows stay."""
    job_ids = list(
        (
            await session.execute(select(Blob.job_id).where(Blob.created_at < older_than).distinct().limit(limit))
        ).scalars()
    )
    if not job_ids:
        return 0
    await session.execute(delete(Blob).where(Blob.job_id.in_(job_ids), Blob.created_at < older_than))
    await session.execute(update(Job).where(Job.id.in_(job_ids)).values(purged_at=now()))
    return len(job_ids)
