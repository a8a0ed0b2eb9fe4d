"""Accepting a job: record job + image + outbox entry in one transaction, then publish with a confirm.

All of it sits behind ``Intake.submit`` so the HTTP handlers never see the transaction; it is the one place
to change for group commit (many requests in one transaction).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import operations, queries
from db.models import Job
from queue_gateway.contract import DetectParams
from queue_gateway.publisher import BrokerUnavailable, Publisher, QueueFull

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Accepted:
    job: Job
    position: int
    duplicate: bool


class Busy(Exception):
    """The queue is full; nothing was kept. Try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"queue full, retry after {retry_after} s")
        self.retry_after = retry_after


class Intake:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        publisher: Publisher,
        *,
        busy_retry_after_s: int,
        result_cache: bool = True,
        on_finished: Callable[[str], None] = lambda job_id: None,
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._busy_retry_after_s = busy_retry_after_s
        self._result_cache = result_cache
        self._on_finished = on_finished

    async def submit(self, new: queries.NewJob) -> Accepted:
        """Store the job durably, then publish it; a repeated idempotency key returns the first job."""
        if new.idempotency_key is not None:
            existing = await self._existing(new.idempotency_key)
            if existing is not None:
                return existing
        if self._result_cache and (cached := await self._from_cache(new)) is not None:
            return cached
        try:
            async with self._sessions.begin() as session:
                job = await queries.add_job(session, new)
        except IntegrityError:
            if new.idempotency_key is not None and (existing := await self._existing(new.idempotency_key)):
                return existing
            raise
        log.info("job %s received (%s, %dx%d)", job.id, job.platform, job.width, job.height)
        await self._publish(job, DetectParams.model_validate(new.params))
        async with self._sessions() as session:
            fresh = await queries.get_job(session, job.id)
            assert fresh is not None
            return Accepted(fresh, await queries.queue_position(session, fresh), duplicate=False)

    async def _from_cache(self, new: queries.NewJob) -> Accepted | None:
        """The same photo with the same parameters was done before: answer at once, no model run."""
        async with self._sessions.begin() as session:
            source = await queries.cached_result(session, new.image_sha256, new.params)
            if source is None:
                return None
            job = await queries.add_cached_job(session, new, source)
        log.info("job %s answered from the result of job %s", job.id, source.id)
        self._on_finished(job.id)
        return Accepted(job, 0, duplicate=False)

    async def requeue(self, job_id: str) -> queries.Outcome:
        """An admin gives a dead or failed job another go; it is published like a new one."""
        async with self._sessions.begin() as session:
            outcome = await operations.requeue(session, job_id)
            job = await queries.get_job(session, job_id) if outcome is queries.Outcome.APPLIED else None
        if job is not None:
            log.info("job %s requeued by an admin", job_id)
            await self._publish(job, DetectParams.model_validate(job.params), withdraw_if_full=False)
        return outcome

    async def _publish(self, job: Job, params: DetectParams, *, withdraw_if_full: bool = True) -> None:
        try:
            await self._publisher.publish(job.id, params)
        except QueueFull:
            if not withdraw_if_full:
                log.warning("job %s waits in the outbox: queue full", job.id)
                return
            async with self._sessions.begin() as session:
                withdrawn = await queries.withdraw(session, job.id)
            if withdrawn:
                log.warning("job %s refused: queue full", job.id)
                raise Busy(self._busy_retry_after_s) from None
            return  # a worker already took it: it is in the queue after all
        except BrokerUnavailable as exc:
            log.warning("job %s kept in the outbox: %s", job.id, exc)
            return
        async with self._sessions.begin() as session:
            await queries.mark_published(session, [job.id])
        log.info("job %s queued", job.id)

    async def _existing(self, key: str) -> Accepted | None:
        async with self._sessions() as session:
            job = await queries.find_by_idempotency_key(session, key)
            if job is None:
                return None
            return Accepted(job, await queries.queue_position(session, job), duplicate=True)
