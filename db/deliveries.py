"""Delivery to chats, in the database: what is due, leases between gateway replicas, receipts, retries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db import rollup
from db.models import Job, JobStatus
from db.queries import now, rowcount


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
    if rowcount(result) != len(job_ids):
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
