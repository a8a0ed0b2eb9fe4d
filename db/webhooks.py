"""Completion webhooks: one durable delivery per job, leased while it is sent, retried with backoff.

A webhook waits (``waiting``) until its job reaches a final state; it is then due. Each try is leased (so gateway
replicas never send the same one at once, and a restarted replica takes its own back at once); its outcome is
recorded in one statement: ``delivered``, ``gone`` (the receiver said 410), due again later (``pending``, with the
next try's time), or ``failed`` once its retry window (from its first try) is over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, func, insert, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.common import now, rowcount
from db.models import FINISHED, Job, Webhook

WAITING, PENDING, DELIVERED, FAILED, GONE = "waiting", "pending", "delivered", "failed", "gone"


@dataclass(frozen=True, slots=True)
class Target:
    """Where a new job's webhook goes: the receiver's URL, and the gateway's own address for the job's links."""

    url: str
    host: str
    base_url: str


async def add(session: AsyncSession, targets: dict[str, Target], *, at: float) -> None:
    """New jobs' webhooks (by job id), waiting for their jobs to finish; in the caller's transaction."""
    if not targets:
        return
    await session.execute(
        insert(Webhook),
        [
            {"job_id": job_id, "url": target.url, "host": target.host, "base_url": target.base_url,
             "event_id": f"msg_{job_id}", "state": WAITING, "attempts": 0, "created_at": at}
            for job_id, target in targets.items()
        ],
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Due:
    """A webhook to send now, with its job."""

    hook: Webhook
    job: Job


async def due(
    session: AsyncSession, *, limit: int, skip_hosts: Sequence[str] = (), at: float | None = None
) -> list[Due]:
    """Webhooks to send now, oldest first: pending ones whose time has come, and waiting ones whose job finished;
    none that a sender holds, none for ``skip_hosts`` (receivers that have all the tries they may have now)."""
    at = now() if at is None else at
    free = or_(Webhook.lease_until.is_(None), Webhook.lease_until < at)
    ready = or_(
        and_(Webhook.state == PENDING, Webhook.next_attempt_at <= at),
        and_(Webhook.state == WAITING, Job.status.in_(FINISHED)),
    )
    rows = await session.execute(
        select(Webhook, Job).join(Job, Job.id == Webhook.job_id)
        .where(ready, free, Webhook.host.not_in(skip_hosts) if skip_hosts else true())
        .order_by(Webhook.created_at).limit(limit)
    )  # fmt: skip
    return [Due(hook, job) for hook, job in rows]


async def lease(session: AsyncSession, job_ids: Sequence[str], *, owner: str, seconds: float) -> list[str]:
    """Take these webhooks for ``seconds`` (those no one holds); return those taken."""
    if not job_ids:
        return []
    at = now()
    rows = await session.execute(
        update(Webhook)
        .execution_options(synchronize_session=False)
        .where(Webhook.job_id.in_(job_ids), or_(Webhook.lease_until.is_(None), Webhook.lease_until < at))
        .values(lease_until=at + seconds, lease_owner=owner)
        .returning(Webhook.job_id)
    )
    return [str(job_id) for job_id in rows.scalars()]


async def release_leases(session: AsyncSession, owner: str) -> int:
    """A restarted sender gives back what it held before (nothing was recorded for those tries)."""
    rows = await session.execute(
        update(Webhook)
        .execution_options(synchronize_session=False)
        .where(Webhook.lease_owner == owner)
        .values(lease_until=None, lease_owner=None)
    )
    return rowcount(rows)


async def delivered(session: AsyncSession, job_id: str, *, status: int, at: float | None = None) -> None:
    at = now() if at is None else at
    await _record(session, job_id, at, state=DELIVERED, delivered_at=at, last_status=status, last_error=None,
                  next_attempt_at=None)  # fmt: skip


async def gone(session: AsyncSession, job_id: str, *, status: int, at: float | None = None) -> None:
    """The receiver answered 410 Gone: it wants no more of this one."""
    await _record(session, job_id, now() if at is None else at, state=GONE, last_status=status, next_attempt_at=None)


async def retry(
    session: AsyncSession, hook: Webhook, *, status: int | None, error: str, after: float, window_s: float,
    at: float | None = None,
) -> str:  # fmt: skip
    """This try failed: due again after ``after`` s, or failed for good once ``window_s`` have passed since its
    first try (so it is tried for at least that long); the new state."""
    at = now() if at is None else at
    first = hook.first_attempt_at if hook.first_attempt_at is not None else at
    if at - first >= window_s:
        await _record(session, hook.job_id, at, state=FAILED, last_status=status, last_error=error[:500],
                      next_attempt_at=None)  # fmt: skip
        return FAILED
    await _record(session, hook.job_id, at, state=PENDING, last_status=status, last_error=error[:500],
                  next_attempt_at=at + after)  # fmt: skip
    return PENDING


async def _record(session: AsyncSession, job_id: str, at: float, **values: object) -> None:
    """One try's outcome, and the lease given back."""
    await session.execute(
        update(Webhook)
        .execution_options(synchronize_session=False)
        .where(Webhook.job_id == job_id)
        .values(
            lease_until=None, lease_owner=None, attempts=Webhook.attempts + 1,
            first_attempt_at=func.coalesce(Webhook.first_attempt_at, at), **values,
        )
    )  # fmt: skip


async def of_jobs(session: AsyncSession, job_ids: Sequence[str]) -> dict[str, Webhook]:
    if not job_ids:
        return {}
    rows = await session.execute(select(Webhook).where(Webhook.job_id.in_(job_ids)))
    return {hook.job_id: hook for hook in rows.scalars()}


async def count_pending(session: AsyncSession) -> int:
    """Webhooks not sent yet whose job has finished (due now, or waiting for their next try)."""
    finished_waiting = select(func.count()).select_from(Webhook).join(Job, Job.id == Webhook.job_id).where(
        Webhook.state == WAITING, Job.status.in_(FINISHED)
    )  # fmt: skip
    pending = select(func.count()).select_from(Webhook).where(Webhook.state == PENDING)
    return int(await session.scalar(pending) or 0) + int(await session.scalar(finished_waiting) or 0)


async def failing(session: AsyncSession, *, limit: int) -> list[Webhook]:
    """Webhooks that failed for good, or whose tries are failing now, newest first (for the admin page)."""
    rows = await session.execute(
        select(Webhook)
        .where(or_(Webhook.state == FAILED, and_(Webhook.state == PENDING, Webhook.attempts > 0)))
        .order_by(Webhook.created_at.desc())
        .limit(limit)
    )
    return list(rows.scalars())


async def next_time(session: AsyncSession) -> float | None:
    """When the next pending webhook is due (None: nothing is scheduled)."""
    found = await session.scalar(select(func.min(Webhook.next_attempt_at)).where(Webhook.state == PENDING))
    return float(found) if found is not None else None
