"""Operations on jobs beside their normal way: the dead-letter list, requeue, cancel, "forget me", retention."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db import blobs, chats
from db.common import Outcome, delivery_time, now
from db.models import ACTIVE, WAITING, Blob, Job, JobStatus


async def dead_jobs(session: AsyncSession, *, limit: int, platforms: Sequence[str] | None = None) -> list[Job]:
    """Dead jobs, newest first (of these platforms only, when given)."""
    query = select(Job).where(Job.status == JobStatus.DEAD)
    if platforms is not None:
        query = query.where(Job.platform.in_(platforms))
    rows = await session.execute(query.order_by(Job.dead_at.desc()).limit(limit))
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
            link_gen=Job.link_gen + 1,  # the earlier attempts' worker links find nothing left to do
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


ANONYMOUS: dict[str, Any] = {
    "origin": None,
    "user_ref": None,
    "idempotency_key": None,
    "group_key": None,
    "image_sha256": "",
    "status_message_id": None,
    "status_edited_id": None,
    "delivery_receipt": None,
    "delivery_lease_owner": None,
    "traceparent": None,
    "next_delivery_at": None,
}
"""What a job keeps of its sender once its photo is gone: nothing (chat, user, message and interaction ids, the
photo's hash, the receipts). The bare row stays for the stats, and says ``gone`` to whoever asks for it."""


async def forget_jobs(session: AsyncSession, job_ids: Sequence[str], *, reason: str) -> None:
    """Delete these jobs' images and results now and everything in them that names a person; one still waiting
    or in progress fails with ``reason`` (a worker that has it finds nothing left to do)."""
    if not job_ids:
        return
    at = now()
    await _drop_blobs(session, job_ids)
    await session.execute(
        update(Job)
        .execution_options(synchronize_session=False)
        .where(Job.id.in_(job_ids), Job.status.in_(ACTIVE))
        .values(status=JobStatus.FAILED, failed_at=at, error_code="forgotten", error=reason)
    )
    await session.execute(
        update(Job)
        .execution_options(synchronize_session=False)
        .where(Job.id.in_(job_ids))
        .values(detections=None, purged_at=at, **ANONYMOUS)
    )


async def forget_user(session: AsyncSession, platform: str, user_id: str) -> int:
    """Delete a person's images and results now, their own settings, and everything in their job rows that names
    them; the bare rows stay for the stats. Return how many jobs were theirs."""
    user_ref = f"{platform}:{user_id}"
    job_ids = list((await session.execute(select(Job.id).where(Job.user_ref == user_ref))).scalars())
    await forget_jobs(session, job_ids, reason="deleted at the sender's request")
    own = [chats.person_scope(user_id)]
    if platform == "telegram" and user_id.isdigit():  # a Telegram private chat is the person's own
        own.append(user_id)
    await chats.forget_settings(session, platform, own)
    return len(job_ids)


SENDER = ("user_ref", "origin")
"""What a job row keeps past its photo's retention, while it is in its sender's /history."""


async def expire(session: AsyncSession, *, older_than: float, names_older_than: float, limit: int = 500) -> int:
    """Retention, a batch at a time: finished jobs received before ``older_than`` lose their images (the row keeps
    what was found, and who sent it in which chat, for their /history); those received before
    ``names_older_than`` also lose everything that names their sender or chat, and the anonymous rows stay for
    the stats. A job still waiting for a worker keeps its photo, however long it waits. Returns how many rows
    changed."""
    job_ids = list(
        (
            await session.execute(
                select(Job.id)
                .where(Job.received_at < older_than, Job.purged_at.is_(None), Job.status.not_in(ACTIVE))
                .limit(limit)
            )
        ).scalars()
    )
    at = now()
    if job_ids:
        await _drop_blobs(session, job_ids)
        await session.execute(
            update(Job)
            .execution_options(synchronize_session=False)
            .where(Job.id.in_(job_ids))
            .values(purged_at=at, **{k: v for k, v in ANONYMOUS.items() if k not in SENDER})
        )
    named = list(
        (
            await session.execute(
                select(Job.id)
                .where(Job.received_at < names_older_than, Job.purged_at.is_not(None), Job.user_ref.is_not(None))
                .limit(limit)
            )
        ).scalars()
    )
    if named:
        await session.execute(
            update(Job).execution_options(synchronize_session=False).where(Job.id.in_(named)).values(**ANONYMOUS)
        )
    return len(job_ids) + len(named)


async def _drop_blobs(session: AsyncSession, job_ids: Sequence[str]) -> None:
    """These jobs name no file any more; the files no other job names are deleted once this commits."""
    rows = await session.execute(delete(Blob).where(Blob.job_id.in_(job_ids)).returning(Blob.digest))
    blobs.release(session, rows.scalars())
