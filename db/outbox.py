"""The publish outbox: a job in ``received`` is stored but not yet confirmed by the broker.

Intake publishes each batch right after committing it; the relay publishes whatever a crash or an outage left
behind (``unpublished``), and anything the broker refused for a while.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db import blobs
from db.common import now, rowcount
from db.models import JOBS, Blob, Job, JobStatus


async def publishable(
    session: AsyncSession, *, limit: int, older_than: float, fair_share: Callable[[str], int]
) -> tuple[list[Job], bool]:
    """Jobs to publish now, oldest first: left unconfirmed before ``older_than`` (a crash, an outage), or held
    for fairness while their sender had ``fair_share(user_ref)`` photos queued, and now allowed. The flag says
    whether held jobs remain.
    """
    rows = await session.execute(
        select(Job)
        .where(Job.status == JobStatus.RECEIVED, or_(Job.held.is_(True), Job.received_at <= older_than))
        .order_by(Job.received_at)
        .limit(limit * 4)
    )
    candidates = list(rows.scalars())
    users = sorted({job.user_ref for job in candidates if job.held and job.user_ref})
    queued: dict[str, int] = {}
    if users:
        counts = await session.execute(
            select(Job.user_ref, func.count())
            .where(Job.user_ref.in_(users), Job.status == JobStatus.QUEUED)
            .group_by(Job.user_ref)
        )
        queued = {str(user): int(n) for user, n in counts}
    chosen = []
    still_held = False
    for job in candidates:
        if job.held and job.user_ref:
            if queued.get(job.user_ref, 0) >= fair_share(job.user_ref):
                still_held = True
                continue
            queued[job.user_ref] = queued.get(job.user_ref, 0) + 1
        chosen.append(job)
    return chosen[:limit], still_held or len(chosen) > limit


# built once, its values as parameters (as in db.transitions)
_PUBLISHED = (
    update(JOBS)
    .where(JOBS.c.id.in_(bindparam("p_ids", expanding=True)), JOBS.c.status == JobStatus.RECEIVED)
    .values(status=JobStatus.QUEUED, queued_at=bindparam("p_at"), held=False)
)


async def mark_published(session: AsyncSession, job_ids: Sequence[str]) -> None:
    """The broker confirmed these jobs: they are ``queued``."""
    if not job_ids:
        return
    await session.execute(_PUBLISHED, {"p_ids": list(job_ids), "p_at": now()})


async def withdraw(session: AsyncSession, job_ids: Sequence[str]) -> set[str]:
    """Remove jobs the broker refused (queue full) before anyone saw them; return those removed.

    A job that moved on meanwhile (a worker already has it) stays: it is in the queue after all.
    """
    if not job_ids:
        return set()
    named = (await session.execute(select(Blob.job_id, Blob.digest).where(Blob.job_id.in_(job_ids)))).all()
    rows = await session.execute(
        delete(Job).where(Job.id.in_(job_ids), Job.status == JobStatus.RECEIVED).returning(Job.id)
    )
    removed = {str(job_id) for job_id in rows.scalars()}
    if removed:  # their images' rows (ON DELETE CASCADE removes them too, where foreign keys are enforced)
        await session.execute(delete(Blob).where(Blob.job_id.in_(removed)))
        blobs.release(session, [digest for job_id, digest in named if job_id in removed])
    return removed


async def refresh_links(session: AsyncSession, *, queued_before: float) -> int:
    """Queued jobs that have waited since before ``queued_before`` go back to the outbox with a new link
    generation, so that the relay publishes them again with fresh worker links (the old ones stop working)."""
    rows = await session.execute(
        update(Job)
        .execution_options(synchronize_session=False)
        .where(Job.status == JobStatus.QUEUED, Job.queued_at < queued_before)
        .values(status=JobStatus.RECEIVED, link_gen=Job.link_gen + 1, held=False, queued_at=None)
    )
    return rowcount(rows)
