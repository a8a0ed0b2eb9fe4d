"""Delivery to chats, in the database: what is due, leases between gateway replicas, receipts, retries.

A delivery is leased by one gateway replica (``delivery_lease_owner``) for a short time that the replica renews
while it works; a replica that dies loses its leases when they run out, and one that restarts releases its own
at once (:func:`release_leases`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BindParameter, Float, and_, bindparam, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db import rollup
from db.common import CHAT_PLATFORMS, now, rowcount
from db.models import ACTIVE, JOBS, WAITING, Blob, Job, JobStatus


def lease_free(at: Any) -> Any:
    """No replica holds this delivery at ``at``: never leased, or its lease ran out."""
    return or_(Job.delivery_lease_until.is_(None), Job.delivery_lease_until < at)


# The statements every delivery runs are built once, with their values as parameters (as in db.transitions): a
# parameter is named apart from its column (``p_…``).
_IDS: BindParameter[str] = bindparam("p_ids", expanding=True)
_AT = bindparam("p_at", type_=Float())  # in an expression (CASE, COALESCE), where no column lends it a type
_RESULT_DIGESTS = select(Blob.job_id, Blob.digest).where(Blob.job_id.in_(_IDS), Blob.kind == "result")
_DELIVERED = (
    update(JOBS)
    .where(JOBS.c.id.in_(_IDS))
    .values(
        status=case((JOBS.c.status == JobStatus.DONE, JobStatus.DELIVERED), else_=JOBS.c.status),
        delivered_at=func.coalesce(JOBS.c.delivered_at, _AT),
        delivery_receipt=bindparam("p_receipt"),
        status_edited_id=bindparam("p_edited"),
        # the bot named a status message that this delivery did not edit: due again at once, to edit it too
        next_delivery_at=case(
            (
                and_(JOBS.c.status_message_id.is_not(None), JOBS.c.status_message_id != bindparam("p_edited_or_empty")),
                _AT,
            ),
            else_=None,
        ),
        delivery_lease_until=None,
        delivery_lease_owner=None,
        delivery_error=None,
    )
)
_STATUS_MESSAGE = (
    update(JOBS)
    .where(JOBS.c.id == bindparam("p_id"))
    .values(
        status_message_id=bindparam("p_message"),
        next_delivery_at=case((JOBS.c.delivered_at.is_not(None), _AT), else_=JOBS.c.next_delivery_at),
    )
    .returning(JOBS.c.owner, JOBS.c.platform, JOBS.c.status, JOBS.c.delivered_at)
)


@functools.lru_cache(maxsize=64)  # one per batch size
def _lease_due_statement(limit: int) -> Any:
    due = (
        select(Job.id)
        .where(Job.next_delivery_at <= _AT, lease_free(_AT))
        .order_by(Job.next_delivery_at)
        .limit(limit)
        .scalar_subquery()
    )
    # the lease condition is repeated outside the subquery: Postgres re-checks it on a row another replica
    # leased meanwhile, so two replicas never both take it
    return (
        update(Job)
        .where(Job.id.in_(due), lease_free(_AT))
        .values(delivery_lease_until=bindparam("p_until"), delivery_lease_owner=bindparam("p_owner"))
        .returning(Job)
        .execution_options(synchronize_session=False)
    )


async def lease_due(session: AsyncSession, *, owner: str, seconds: float, limit: int) -> list[Job]:
    """Lease (for ``seconds``) up to ``limit`` deliveries that are due and not leased by anyone; return them."""
    at = now()
    rows = await session.execute(_lease_due_statement(limit), {"p_at": at, "p_until": at + seconds, "p_owner": owner})
    return sorted(rows.scalars(), key=lambda job: job.next_delivery_at or 0.0)


async def lease(session: AsyncSession, job_ids: Sequence[str], *, owner: str, seconds: float) -> bool:
    """Take the lease on all these jobs, or on none (another delivery has one of them)."""
    at = now()
    result = await session.execute(
        update(Job)
        .execution_options(synchronize_session=False)
        .where(Job.id.in_(job_ids), or_(lease_free(at), Job.delivery_lease_owner == owner))
        .values(delivery_lease_until=at + seconds, delivery_lease_owner=owner)
    )
    if rowcount(result) != len(job_ids):
        await session.rollback()
        return False
    return True


async def renew(session: AsyncSession, job_ids: Sequence[str], *, owner: str, seconds: float) -> None:
    """Keep the leases this replica holds on these jobs for another ``seconds``."""
    await session.execute(
        update(Job)
        .execution_options(synchronize_session=False)
        .where(Job.id.in_(job_ids), Job.delivery_lease_owner == owner)
        .values(delivery_lease_until=now() + seconds)
    )


async def release_leases(session: AsyncSession, owner: str) -> int:
    """A replica starting up gives back the leases its previous run held: they are due again now."""
    result = await session.execute(
        update(Job)
        .execution_options(synchronize_session=False)
        .where(Job.delivery_lease_owner == owner)
        .values(delivery_lease_until=None, delivery_lease_owner=None)
    )
    return rowcount(result)


async def result_digests(session: AsyncSession, job_ids: Sequence[str]) -> dict[str, str]:
    """The blob-store digest of each of these jobs' annotated result (those that have one)."""
    rows = await session.execute(_RESULT_DIGESTS, {"p_ids": list(job_ids)})
    return {str(job_id): str(digest) for job_id, digest in rows}


async def next_delivery_time(session: AsyncSession) -> float | None:
    """When a delivery that nobody holds falls due next; one in hand counts from its lease's end.

    A delivery in hand keeps its past due time until it is recorded: counting that would make the loop that waits
    for the next due delivery spin for as long as a chat's pacing or an upload holds it.
    """
    at = now()
    pending = Job.next_delivery_at.is_not(None)
    free = select(func.min(Job.next_delivery_at)).where(pending, lease_free(at)).scalar_subquery()
    held = select(func.min(Job.delivery_lease_until)).where(pending, Job.delivery_lease_until >= at).scalar_subquery()
    times = [float(value) for value in (await session.execute(select(free, held))).one() if value is not None]
    return min(times, default=None)


async def save_receipt(session: AsyncSession, job_ids: Sequence[str], receipt: dict[str, Any]) -> None:
    """Record what was already sent: a retried delivery skips it (no duplicate messages)."""
    await session.execute(
        update(Job)
        .execution_options(synchronize_session=False)
        .where(Job.id.in_(job_ids))
        .values(delivery_receipt=receipt)
    )


async def delivered(
    session: AsyncSession, jobs: Sequence[Job], receipt: dict[str, Any], *, status_edited: str | None
) -> None:
    """The chat has its answer: record the receipt, count the delivery, and release the lease — in one statement.

    ``status_edited`` is the status message the delivery edited. If the bot named one meanwhile that was not
    edited (it was posted while we were sending), the job is due again at once, to edit that one too.
    """
    at = now()
    for job in jobs:
        if job.status == JobStatus.DONE and job.delivered_at is None:
            await rollup.count_event(session, at, job.platform, "delivered")
            await rollup.observe(session, at, "end_to_end", at - job.received_at)
    await session.execute(
        _DELIVERED,
        {
            "p_ids": [job.id for job in jobs],
            "p_at": at,
            "p_receipt": receipt,
            "p_edited": status_edited,
            "p_edited_or_empty": status_edited or "",
        },
    )


async def delivery_retry(session: AsyncSession, job_ids: Sequence[str], *, after: float, error: str) -> None:
    await session.execute(
        update(Job)
        .execution_options(synchronize_session=False)
        .where(Job.id.in_(job_ids))
        .values(
            next_delivery_at=now() + after,
            delivery_lease_until=None,
            delivery_lease_owner=None,
            delivery_attempts=Job.delivery_attempts + 1,
            delivery_error=error[:500],
        )
    )


async def delivery_abandoned(session: AsyncSession, job_ids: Sequence[str], *, error: str) -> None:
    """Give up on telling the chat (blocked bot, deleted chat, too many failures); the job keeps its result."""
    await session.execute(
        update(Job)
        .execution_options(synchronize_session=False)
        .where(Job.id.in_(job_ids))
        .values(next_delivery_at=None, delivery_lease_until=None, delivery_lease_owner=None, delivery_error=error[:500])
    )


async def park(session: AsyncSession, job_ids: Sequence[str]) -> None:
    """Album members that finished before the rest: the last one to finish brings the group's delivery."""
    await session.execute(
        update(Job)
        .execution_options(synchronize_session=False)
        .where(Job.id.in_(job_ids))
        .values(next_delivery_at=None, delivery_lease_until=None, delivery_lease_owner=None)
    )


@dataclass(frozen=True, slots=True)
class StatusNamed:
    """What naming a status message tells the caller about its job."""

    owner: str | None
    platform: str
    status: JobStatus
    delivered_at: float | None


async def set_status_message(session: AsyncSession, job_id: str, message_id: str) -> StatusNamed | None:
    """The bot posted its "queued" message; if the result already went out, make the status edit due now.

    Judged by the UPDATE itself as the row is written: judged from an earlier read, a delivery that finished in
    between (its own check having run before ours was written) would leave the status message unedited for good.
    """
    rows = await session.execute(_STATUS_MESSAGE, {"p_id": job_id, "p_message": message_id, "p_at": now()})
    row = rows.first()
    return None if row is None else StatusNamed(row.owner, row.platform, JobStatus(row.status), row.delivered_at)


async def in_line_with_status(session: AsyncSession, *, limit: int = 500) -> list[tuple[Job, int]]:
    """Chat jobs not finished yet whose bot named a status message, with their place in line (0: processing)."""
    line = (
        select(Job.id, func.row_number().over(order_by=(Job.received_at, Job.id)).label("position"))
        .where(Job.status.in_(WAITING))
        .subquery()
    )
    rows = await session.execute(
        select(Job, line.c.position)
        .outerjoin(line, line.c.id == Job.id)
        .where(Job.status.in_(ACTIVE), Job.status_message_id.is_not(None), Job.platform.in_(CHAT_PLATFORMS))
        .order_by(Job.received_at)
        .limit(limit)
    )
    return [(job, int(position or 0)) for job, position in rows]
