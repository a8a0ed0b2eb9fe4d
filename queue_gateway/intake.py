"""Accepting jobs: record job + image + outbox entry durably, then publish with a confirm.

Requests do not each open a transaction: ``submit`` hands the job to one batcher, which writes everything that
arrived meanwhile in ONE transaction (group commit), publishes the batch with concurrent confirms, marks it
queued in one statement and answers every waiting request. Under load the batches grow by themselves; a lone
request is written at once. If a batch hits a unique-key race (two replicas, one idempotency key), it is
retried one job at a time, so only the duplicate is affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import operations, queries
from db.models import Job, JobStatus
from queue_gateway.contract import DetectParams
from queue_gateway.publisher import BrokerUnavailable, Publisher, QueueFull

log = logging.getLogger(__name__)

MAX_BATCH = 256  # jobs per transaction; more wait for the next one


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


@dataclass(slots=True)
class _Pending:
    new: queries.NewJob
    answer: asyncio.Future[Accepted]


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
        self._pending: list[_Pending] = []
        self._current: list[_Pending] = []
        self._wake = asyncio.Event()

    async def submit(self, new: queries.NewJob) -> Accepted:
        """Store the job durably, then publish it; a repeated idempotency key returns the first job."""
        if new.idempotency_key is not None and (existing := await self._existing(new.idempotency_key)):
            return existing
        if self._result_cache and (cached := await self._from_cache(new)) is not None:
            return cached
        answer: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(new, answer))
        self._wake.set()
        return await answer

    async def run(self) -> None:
        """The batcher: one group commit at a time, for whatever has arrived since the last one."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._pending:
                    self._current, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                    await self._accept(self._current)
                    self._current = []
        finally:  # shutting down: nobody will write these
            for pending in [*self._current, *self._pending]:
                pending.answer.cancel()

    async def _accept(self, batch: list[_Pending]) -> None:
        try:
            await self._write(batch)
        except IntegrityError:
            log.info("a batch of %d hit a unique key; writing its jobs one by one", len(batch))
            await self._one_by_one(batch)
            return
        except Exception as exc:  # the database is down: every request of the batch hears about it
            for pending in batch:
                _fail(pending, exc)
            return
        await self._publish_and_answer(batch)

    async def _write(self, batch: Sequence[_Pending]) -> None:
        async with self._sessions.begin() as session:
            await queries.add_jobs(session, [p.new for p in batch])
        for p in batch:
            log.info("job %s received (%s, %dx%d)", p.new.id, p.new.platform, p.new.width, p.new.height)

    async def _one_by_one(self, batch: list[_Pending]) -> None:
        written = []
        for pending in batch:
            try:
                await self._write([pending])
            except IntegrityError:
                key = pending.new.idempotency_key
                existing = await self._existing(key) if key else None
                if existing is None:
                    _fail(pending, RuntimeError(f"job {pending.new.id} could not be stored"))
                elif not pending.answer.done():
                    pending.answer.set_result(existing)
                continue
            except Exception as exc:
                _fail(pending, exc)
                continue
            written.append(pending)
        await self._publish_and_answer(written)

    async def _publish_and_answer(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        try:
            outcomes = await asyncio.gather(
                *(self._publisher.publish(p.new.id, DetectParams.model_validate(p.new.params)) for p in batch),
                return_exceptions=True,
            )
            confirmed = [p.new.id for p, outcome in zip(batch, outcomes, strict=True) if outcome is None]
            refused = [p for p, outcome in zip(batch, outcomes, strict=True) if isinstance(outcome, QueueFull)]
            for p, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, BrokerUnavailable):
                    log.warning("job %s kept in the outbox: %s", p.new.id, outcome)
                elif isinstance(outcome, BaseException) and not isinstance(outcome, QueueFull):
                    raise outcome
            if confirmed:
                async with self._sessions.begin() as session:
                    await queries.mark_published(session, confirmed)
            busy = await self._withdraw(refused)
            await self._answer([p for p in batch if p.new.id not in busy])
        except Exception as exc:
            for pending in batch:
                _fail(pending, exc)

    async def _withdraw(self, refused: list[_Pending]) -> set[str]:
        """Jobs the broker refused (queue full) are removed again and their requests answered "busy"."""
        busy = set()
        for pending in refused:
            async with self._sessions.begin() as session:
                withdrawn = await queries.withdraw(session, pending.new.id)
            if withdrawn:  # else a worker already took it: it is in the queue after all
                log.warning("job %s refused: queue full", pending.new.id)
                busy.add(pending.new.id)
                _fail(pending, Busy(self._busy_retry_after_s))
        return busy

    async def _answer(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        async with self._sessions() as session:
            jobs = await queries.get_jobs(session, [p.new.id for p in batch])
            first = min(job.received_at for job in jobs.values())
            ahead = await queries.waiting_before(session, first)
        waiting = (JobStatus.RECEIVED, JobStatus.QUEUED)
        for pending in batch:  # in arrival order: each one is behind the ones before it
            job = jobs[pending.new.id]
            if job.status in waiting:
                ahead += 1
                position = ahead
            else:
                position = 0
            if job.status == JobStatus.QUEUED:
                log.info("job %s queued", job.id)
            if not pending.answer.done():
                pending.answer.set_result(Accepted(job, position, duplicate=False))

    async def requeue(self, job_id: str) -> queries.Outcome:
        """An admin gives a dead or failed job another go; it is published like a new one."""
        async with self._sessions.begin() as session:
            outcome = await operations.requeue(session, job_id)
            job = await queries.get_job(session, job_id) if outcome is queries.Outcome.APPLIED else None
        if job is not None:
            log.info("job %s requeued by an admin", job_id)
            with contextlib.suppress(QueueFull, BrokerUnavailable):  # the outbox relay tries again later
                await self._publisher.publish(job.id, DetectParams.model_validate(job.params))
                async with self._sessions.begin() as session:
                    await queries.mark_published(session, [job.id])
        return outcome

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

    async def _existing(self, key: str) -> Accepted | None:
        async with self._sessions() as session:
            job = await queries.find_by_idempotency_key(session, key)
            if job is None:
                return None
            return Accepted(job, await queries.queue_position(session, job), duplicate=True)


def _fail(pending: _Pending, exc: BaseException) -> None:
    if not pending.answer.done():
        pending.answer.set_exception(exc)
