"""Operations on jobs beside their normal way: the dead-letter list, requeue, cancel, "forget me", retention."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.common import Outcome, delivery_time, now
from db.models import ACTIVE, WAITING, Blob, Job, JobStatus


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
    await session.execute(
        update(Job)
        .execution_options(synchronize_session=False)
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
            delivery_lease_owner=None,
            status_edited_id=None,
        )
    )
    return Outcome.APPLIED


async def cancel(session: AsyncSession, job_id: str) -> list[str]:
    """The sender takes back a photo (and the rest of its album) that still waits in line; return those cancelled.

    Cancelled jobs are never processed nor delivered; a chat job becomes due for delivery at once, so that its
    status message says it was cancelled.
    """
    job = await session.get(Job, job_id)
    if job is None:
        return []
    at = now()
    scope = Job.group_key == job.group_key if job.group_key else Job.id == job_id
    rows = await session.execute(
        update(Job)
        .execution_options(synchronize_session=False)
        .where(scope, Job.status.in_(WAITING))
        .values(status=JobStatus.CANCELLED, cancelled_at=at, next_delivery_at=delivery_time(at))
        .returning(Job.id)
    )
    return [str(cancelled) for cancelled in rows.scalars()]


async def forget_user(session: AsyncSession, user_ref: str) -> int:
    """Delete a person's images and results now; the bare job rows stay (anonymous) for stats."""
    job_ids = list((await session.execute(select(Job.id).where(Job.user_ref == user_ref))).scalars())
    if not job_ids:
        return 0
    at = now()
    await session.execute(delete(Blob).where(Blob.job_id.in_(job_ids)))
    await session.execute(
        update(Job)
        .execution_options(synchronize_session=False)
        .where(Job.id.in_(job_ids), Job.status.in_(ACTIVE))
        .values(status=JobStatus.FAILED, failed_at=at, error_code="forgotten", error="deleted at the sender's request")
    )
    await session.execute(
        update(Job)
        .execution_options(synchronize_session=False)
        .where(Job.id.in_(job_ids))
        .values(detections=None, origin=None, user_ref=None, purged_at=at, next_delivery_at=None)
    )
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
    await session.execute(
        update(Job).execution_options(synchronize_session=False).where(Job.id.in_(job_ids)).values(purged_at=now())
    )
    return len(job_ids)
