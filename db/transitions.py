"""A job's way through the workers: each transition is one guarded UPDATE, so a repeat changes nothing.

Each function runs inside the caller's transaction, and bumps the stats rollups in it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, and_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db import blobs, deliveries, rollup
from db.blobstore import BlobStore, StoredBlob
from db.common import CHAT_PLATFORMS, Outcome, delivery_time, label_counts, now, rowcount
from db.models import ACTIVE, BLOBS, FINISHED, JOBS, WAITING, Blob, Job, JobStatus, WorkerSeen


@dataclass(frozen=True, slots=True)
class Handoff:
    """A result's own replica takes the delivery that follows, in the statement that records the result: the lease
    (``owner``, for ``seconds``) that the delivery loop would otherwise take in a transaction of its own."""

    owner: str
    seconds: float


@dataclass(frozen=True, slots=True)
class Finished:
    """A job that just reached a final state, with what metrics want to know about it; ``leased``: the job's row,
    when its delivery was leased to the caller's replica in the same statement (see :class:`Handoff`)."""

    job_id: str
    status: str
    platform: str
    received_at: float
    processing_at: float | None
    finished_at: float
    leased: Job | None = None

    @property
    def deliverable(self) -> bool:
        """Its chat is due an answer now (HTTP clients fetch their own)."""
        return self.platform in CHAT_PLATFORMS

    @property
    def stages(self) -> dict[str, float | None]:
        return {
            "queue_wait": _span(self.received_at, self.processing_at),
            "processing": _span(self.processing_at, self.finished_at),
            "end_to_end": self.finished_at - self.received_at,
        }


_FINISHED_COLUMNS = (Job.id, Job.status, Job.platform, Job.received_at, Job.processing_at)

# The statements every photo runs are built once, with their values as parameters: building one and computing its
# cache key each time cost more CPU than running it (an UPDATE's transaction on SQLite: 0.5 against 0.85-1.07 ms).
# A parameter is named apart from its column (``p_…``): SQLAlchemy reserves a column's own name for its SET value.
_START = (
    update(JOBS)
    .where(
        JOBS.c.id == bindparam("p_id"),
        JOBS.c.link_gen == bindparam("p_gen"),
        JOBS.c.status.in_(WAITING),
        JOBS.c.purged_at.is_(None),
        JOBS.c.attempts < bindparam("p_max"),
    )
    .values(
        status=JobStatus.PROCESSING,
        attempts=JOBS.c.attempts + 1,
        processing_at=bindparam("p_at"),
        queued_at=func.coalesce(JOBS.c.queued_at, bindparam("p_at", type_=Float())),
        worker=bindparam("p_worker"),
    )
)


@functools.cache
def _move_on_statement(columns: tuple[str, ...], with_gen: bool, handoff: bool) -> Any:
    """The guarded UPDATE of :func:`_move_on` for one set of columns, built once per set; with ``handoff`` it also
    leases the delivery of a chat's single photo (an album's is the delivery loop's: it gathers the album) and
    returns the whole row."""
    at = bindparam("p_at", type_=Float())
    guard = [Job.id == bindparam("p_id"), Job.status.in_(ACTIVE)]
    if with_gen:
        guard.append(Job.link_gen == bindparam("p_gen"))
    statement = (
        update(Job)
        .execution_options(synchronize_session=False)
        .where(*guard)
        .values({column: bindparam(f"p_{column}") for column in columns})
        .values(next_delivery_at=delivery_time(at))
    )
    if not handoff:
        return statement.returning(*_FINISHED_COLUMNS)
    handed = and_(Job.platform.in_(CHAT_PLATFORMS), Job.group_size <= 1, deliveries.lease_free(at))
    return statement.values(
        delivery_lease_owner=case((handed, bindparam("p_owner")), else_=Job.delivery_lease_owner),
        delivery_lease_until=case((handed, bindparam("p_until", type_=Float())), else_=Job.delivery_lease_until),
    ).returning(Job)


_INPUT_OF_JOB = (BLOBS.c.job_id == JOBS.c.id, BLOBS.c.kind == "input")
# the worker's fetch: the attempt starts and the input's file is found in one statement
_START_FETCH = _START.returning(
    select(BLOBS.c.digest).where(*_INPUT_OF_JOB).scalar_subquery(),
    select(BLOBS.c.content_type).where(*_INPUT_OF_JOB).scalar_subquery(),
)


@dataclass(frozen=True, slots=True)
class Input:
    """Where a job's input photo is: its file in the blob store, and its type."""

    digest: str
    content_type: str


async def start_attempt(
    session: AsyncSession,
    job_id: str,
    *,
    worker: str,
    max_attempts: int,
    link_gen: int = 0,
    delivery: int | None = None,
) -> Outcome:
    """A worker fetched the input: count the attempt, or give up on a job that keeps failing.

    An attempt is one delivery of the job's message: a repeated fetch within the same delivery (``delivery``, the
    broker's count, no higher than the attempts counted) serves the photo again without counting
    (``REPEATED``), so a link cannot be used to wear a job out. Links of an earlier generation (before a requeue)
    find nothing left to do (``GONE``).
    """
    at = now()
    started = await session.execute(_START, _start_params(job_id, worker, max_attempts, link_gen, at))
    if rowcount(started):
        return Outcome.APPLIED
    return await _not_started(session, job_id, worker=worker, max_attempts=max_attempts, link_gen=link_gen,
                              delivery=delivery, at=at)  # fmt: skip


async def start_fetch(
    session: AsyncSession,
    job_id: str,
    *,
    worker: str,
    max_attempts: int,
    link_gen: int = 0,
    delivery: int | None = None,
) -> tuple[Outcome, Input | None]:
    """:func:`start_attempt`, and the input the worker may fetch then (``APPLIED`` or ``REPEATED``; None if its
    file is gone): read in the statement that starts the attempt, when it does."""
    at = now()
    rows = await session.execute(_START_FETCH, _start_params(job_id, worker, max_attempts, link_gen, at))
    if (row := rows.first()) is not None:
        return Outcome.APPLIED, (Input(row[0], row[1]) if row[0] is not None else None)
    outcome = await _not_started(session, job_id, worker=worker, max_attempts=max_attempts, link_gen=link_gen,
                                 delivery=delivery, at=at)  # fmt: skip
    if outcome not in (Outcome.APPLIED, Outcome.REPEATED):
        return outcome, None
    blob = await session.get(Blob, (job_id, "input"))
    return outcome, (Input(blob.digest, blob.content_type) if blob is not None else None)


def _start_params(job_id: str, worker: str, max_attempts: int, link_gen: int, at: float) -> dict[str, Any]:
    return {"p_id": job_id, "p_gen": link_gen, "p_max": max_attempts, "p_at": at, "p_worker": worker}


async def _not_started(
    session: AsyncSession,
    job_id: str,
    *,
    worker: str,
    max_attempts: int,
    link_gen: int,
    delivery: int | None,
    at: float,
) -> Outcome:
    """Why the attempt did not start as a first one: a repeat, another delivery of a job in hand, or the end."""
    job = await session.get(Job, job_id)
    if job is None:
        return Outcome.NOT_FOUND
    if job.status in FINISHED or job.purged_at is not None or job.link_gen != link_gen:
        return Outcome.GONE
    if job.status == JobStatus.PROCESSING and (delivery is None or delivery <= job.attempts):
        return Outcome.REPEATED  # the same delivery asks again (a retried request): the same attempt
    if job.attempts < max_attempts:  # delivered again after its worker died: another attempt
        await session.execute(
            update(Job)
            .execution_options(synchronize_session=False)
            .where(Job.id == job_id, Job.status == JobStatus.PROCESSING)
            .values(attempts=Job.attempts + 1, processing_at=at, worker=worker)
        )
        return Outcome.APPLIED
    if job.error_code == "timeout" and job.error:
        await mark_dead(session, job_id, reason=f"{job.error}, {job.attempts} times", code="timeout")
    else:
        await mark_dead(
            session, job_id, reason=f"it stopped the worker {job.attempts} times in a row", code="worker_crash"
        )
    return Outcome.EXHAUSTED


async def complete(
    session: AsyncSession,
    store: BlobStore,
    job_id: str,
    *,
    link_gen: int | None = None,
    detections: list[dict[str, Any]],
    model: str,
    worker: str,
    inference_ms: float,
    image: StoredBlob,
    conf_used: float | None = None,
    clip: dict[str, Any] | None = None,
    handoff: Handoff | None = None,
) -> tuple[Outcome, Finished | None]:
    """Record a successful result, whose annotated image (a clip's animation) is in the blob store already; only
    the first result for a job counts (the file of a repeated one is let go). ``clip``: a clip's summary, kept
    beside what its probe found; its ``most`` counts toward the top classes. ``handoff``: see :func:`_move_on`."""
    at = now()
    values: dict[str, Any] = dict(
        status=JobStatus.DONE,
        done_at=at,
        detections=detections,
        model=model,
        worker=worker,
        inference_ms=inference_ms,
        conf_used=conf_used,
        error=None,
        error_code=None,
    )
    if clip is not None:
        probed = await session.scalar(select(Job.clip).where(Job.id == job_id))
        values["clip"] = {**(probed or {}), **clip}
    finished = await _move_on(session, job_id, values, at, link_gen=link_gen, handoff=handoff)
    if finished is None:
        blobs.release(session, [image.digest])
        return await _why_not(session, job_id), None
    await blobs.hold(session, store, {image.digest: image.data}, at=at)
    row = blobs.blob_row(job_id, "result", image.digest, image.content_type, len(image.data), at)
    await session.execute(insert(BLOBS), [row])
    await rollup.count_event(session, at, finished.platform, "done")
    spans = finished.stages
    if finished.platform in CHAT_PLATFORMS:  # chat jobs end when the chat has the answer (deliveries.delivered)
        spans.pop("end_to_end")
    await rollup.observe_many(session, at, spans)
    await rollup.count_labels(session, at, dict(clip["most"]) if clip else label_counts(detections))
    return Outcome.APPLIED, finished


async def record_progress(session: AsyncSession, job_id: str, *, done: int, total: int, link_gen: int) -> bool:
    """A worker says how far it is with a clip (frame ``done`` of ``total``): kept while the job is in its hands,
    never moving back. False when the job is not being processed through links of this generation."""
    result = await session.execute(
        update(Job)
        .execution_options(synchronize_session=False)
        .where(
            Job.id == job_id,
            Job.status == JobStatus.PROCESSING,
            Job.link_gen == link_gen,
            or_(Job.progress_done.is_(None), Job.progress_done <= done, Job.progress_total != total),
        )
        .values(progress_done=done, progress_total=total)
    )
    return bool(rowcount(result))


async def fail(
    session: AsyncSession,
    job_id: str,
    *,
    code: str,
    message: str,
    worker: str | None = None,
    link_gen: int | None = None,
    refused: dict[str, float] | None = None,
    handoff: Handoff | None = None,
) -> tuple[Outcome, Finished | None]:
    """A final error (bad input, a model that cannot run it): the person is told why. ``refused``: a clip the
    worker would not take, its ``limit`` and ``value`` (kept with the clip, for the person's sentence);
    ``handoff``: see :func:`_move_on`."""
    at = now()
    values: dict[str, Any] = {
        "status": JobStatus.FAILED,
        "failed_at": at,
        "error_code": code,
        "error": message,
    }
    if worker:
        values["worker"] = worker
    if refused:
        probed = await session.scalar(select(Job.clip).where(Job.id == job_id))
        values["clip"] = {**(probed or {}), "refused": refused}
    finished = await _move_on(session, job_id, values, at, link_gen=link_gen, handoff=handoff)
    if finished is None:
        return await _why_not(session, job_id), None
    await rollup.count_event(session, at, finished.platform, "failed")
    return Outcome.APPLIED, finished


async def note_failure(
    session: AsyncSession, job_id: str, *, code: str, message: str, link_gen: int | None = None
) -> Outcome:
    """One attempt failed (it timed out) and the job goes back to the queue: remember why, for its last word."""
    guard = [Job.id == job_id, Job.status.in_(ACTIVE)]
    if link_gen is not None:
        guard.append(Job.link_gen == link_gen)
    result = await session.execute(
        update(Job).execution_options(synchronize_session=False).where(*guard).values(error_code=code, error=message)
    )
    return Outcome.APPLIED if rowcount(result) else await _why_not(session, job_id)


async def mark_dead(session: AsyncSession, job_id: str, *, reason: str, code: str = "dead") -> Outcome:
    """Deliveries exhausted: park the job for an admin; the person is told."""
    at = now()
    values = dict(status=JobStatus.DEAD, dead_at=at, error_code=code, error=reason)
    finished = await _move_on(session, job_id, values, at)
    if finished is None:
        return await _why_not(session, job_id)
    await rollup.count_event(session, at, finished.platform, "dead")
    return Outcome.APPLIED


async def saw_worker(session: AsyncSession, name: str, model: str | None = None) -> None:
    """Remember that this worker was alive just now (for "workers seen in the last minute")."""
    at = now()
    values: dict[str, Any] = {"last_seen_at": at}
    if model:
        values["model"] = model
    result = await session.execute(
        update(WorkerSeen).execution_options(synchronize_session=False).where(WorkerSeen.name == name).values(values)
    )
    if not rowcount(result):
        try:
            async with session.begin_nested():
                session.add(WorkerSeen(name=name, last_seen_at=at, model=model))
        except IntegrityError:
            pass  # another request added it a moment ago


async def _move_on(
    session: AsyncSession,
    job_id: str,
    values: dict[str, Any],
    at: float,
    *,
    link_gen: int | None = None,
    handoff: Handoff | None = None,
) -> Finished | None:
    """The guarded UPDATE: only a job that still waits for a worker moves to a final state (and, for a worker's
    result, only through the links of its current generation: a result from before a requeue changes nothing).
    A chat job becomes due for delivery at ``at`` (HTTP clients fetch their own results); with a ``handoff``, a
    chat's single photo is leased for delivery to the caller's replica as well (``Finished.leased``)."""
    columns = tuple(sorted(values))
    params = {f"p_{column}": values[column] for column in columns}
    params["p_id"] = job_id
    params["p_at"] = at
    if link_gen is not None:
        params["p_gen"] = link_gen
    if handoff is not None:
        params |= {"p_owner": handoff.owner, "p_until": at + handoff.seconds}
    rows = await session.execute(_move_on_statement(columns, link_gen is not None, handoff is not None), params)
    if handoff is not None:
        job = rows.scalars().first()
        if job is None:
            return None
        leased = (
            job
            if job.delivery_lease_owner == handoff.owner and job.delivery_lease_until == at + handoff.seconds
            else None
        )
        return Finished(job.id, str(job.status), job.platform, job.received_at, job.processing_at, at, leased)
    row = rows.first()
    if row is None:
        return None
    return Finished(row.id, str(row.status), row.platform, row.received_at, row.processing_at, at)


async def _why_not(session: AsyncSession, job_id: str) -> Outcome:
    exists = await session.scalar(select(func.count()).select_from(Job).where(Job.id == job_id))
    return Outcome.REPEATED if exists else Outcome.NOT_FOUND


def _span(start: float | None, end: float | None) -> float | None:
    return end - start if start is not None and end is not None else None
