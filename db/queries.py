"""Small query functions: every job transition is one guarded UPDATE, so repeats change nothing.

Each function runs inside the caller's session and transaction; the caller commits.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from sqlalchemy import case, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db import rollup
from db.models import Blob, Job, JobStatus, OutboxEntry

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


async def add_jobs(session: AsyncSession, batch: Sequence[NewJob], *, at: float | None = None) -> None:
    """Stage many jobs (with their images and outbox entries) in the caller's transaction: group commit.

    Core bulk inserts, three statements for the whole batch, instead of a unit of work per job.
    """
    at = now() if at is None else at
    await session.execute(insert(Job), [_job_row(new, at) for new in batch])
    await session.execute(
        insert(Blob),
        [
            {
                "job_id": n.id,
                "kind": "input",
                "content_type": n.content_type,
                "data": n.image,
                "size": len(n.image),
                "created_at": at,
            }
            for n in batch
        ],
    )
    await session.execute(
        insert(OutboxEntry), [{"job_id": n.id, "created_at": at, "available_at": at, "attempts": 0} for n in batch]
    )
    per_platform: dict[str, int] = {}
    for new in batch:
        per_platform[new.platform] = per_platform.get(new.platform, 0) + 1
    for platform, count in per_platform.items():
        await rollup.count_event(session, at, platform, "received", count)


def _blob_row(job_id: str, kind: str, content_type: str, data: bytes, at: float) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "kind": kind,
        "content_type": content_type,
        "data": data,
        "size": len(data),
        "created_at": at,
    }


def _job_row(new: NewJob, at: float) -> dict[str, Any]:
    return {
        "id": new.id,
        "status": JobStatus.RECEIVED,
        "platform": new.platform,
        "idempotency_key": new.idempotency_key,
        "user_ref": new.user_ref,
        "origin": new.origin,
        "params": new.params,
        "group_key": new.group_key,
        "group_size": new.group_size,
        "group_index": new.group_index,
        "image_sha256": new.image_sha256,
        "image_format": new.image_format,
        "width": new.width,
        "height": new.height,
        "attempts": 0,
        "delivery_attempts": 0,
        "cache_hit": False,
        "received_at": at,
    }


async def get_jobs(session: AsyncSession, job_ids: Sequence[str]) -> dict[str, Job]:
    rows = await session.execute(select(Job).where(Job.id.in_(job_ids)))
    return {job.id: job for job in rows.scalars()}


async def waiting_before(session: AsyncSession, at: float) -> int:
    """How many jobs still wait for a worker that arrived before ``at``."""
    count = await session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.status.in_([JobStatus.RECEIVED, JobStatus.QUEUED]), Job.received_at < at)
    )
    return int(count or 0)


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
    return bool(rowcount(result))


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
    result = await session.get(Blob, (source.id, "result"))
    assert result is not None
    row = _job_row(new, at) | {
        "status": JobStatus.DONE,
        "cache_hit": True,
        "queued_at": at,
        "processing_at": at,
        "done_at": at,
        "detections": source.detections,
        "model": source.model,
        "worker": "cache",
        "inference_ms": 0.0,
        "next_delivery_at": at if new.platform in CHAT_PLATFORMS else None,
    }
    await session.execute(insert(Job), [row])
    await session.execute(
        insert(Blob),
        [
            _blob_row(new.id, "input", new.content_type, new.image, at),
            _blob_row(new.id, "result", result.content_type, result.data, at),
        ],
    )
    for event in ("received", "done", "cache_hit"):
        await rollup.count_event(session, at, new.platform, event)
    if new.platform not in CHAT_PLATFORMS:
        await rollup.observe(session, at, "end_to_end", 0.0)
    await rollup.count_labels(session, at, label_counts(list(source.detections or [])))
    job = await session.get(Job, new.id)
    assert job is not None
    return job


def delivery_time(at: float) -> Any:
    """Chat jobs become due for delivery when they finish; HTTP clients fetch their own results."""
    return case((Job.platform.in_(CHAT_PLATFORMS), at), else_=None)


def rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def jobs_in_group(session: AsyncSession, group_key: str) -> list[Job]:
    rows = await session.execute(select(Job).where(Job.group_key == group_key).order_by(Job.group_index))
    return list(rows.scalars())


def label_counts(detections: list[dict[str, Any]]) -> dict[str, int]:
    """How many of each label a result holds."""
    counts: dict[str, int] = {}
    for detection in detections:
        label = str(detection.get("label", "?"))
        counts[label] = counts.get(label, 0) + 1
    return counts
