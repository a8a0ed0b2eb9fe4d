"""The outbox relay: publishes jobs that were stored but never confirmed (a crash, a broker outage)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import queries
from db.models import JobStatus
from queue_gateway.contract import DetectParams
from queue_gateway.publisher import BrokerUnavailable, Publisher, QueueFull

log = logging.getLogger(__name__)

BATCH = 100


class OutboxRelay:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        publisher: Publisher,
        *,
        interval_s: float,
        grace_s: float,
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._interval_s = interval_s
        self._grace_s = grace_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                published = await self.relay_once()
            except Exception:
                log.exception("outbox relay pass failed")
                published = 0
            if published < BATCH:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._interval_s)

    async def relay_once(self, *, grace_s: float | None = None) -> int:
        """Publish due entries older than the grace period; return how many were confirmed."""
        grace = self._grace_s if grace_s is None else grace_s
        async with self._sessions() as session:
            entries = await queries.due_outbox(session, limit=BATCH, older_than=queries.now() - grace)
            jobs = {e.job_id: await queries.get_job(session, e.job_id) for e in entries}
        confirmed: list[str] = []
        for job_id, job in jobs.items():
            if job is None or job.status != JobStatus.RECEIVED:
                confirmed.append(job_id)  # a worker already has it: the message reached the broker
                continue
            try:
                await self._publisher.publish(job_id, DetectParams.model_validate(job.params))
            except (QueueFull, BrokerUnavailable) as exc:
                log.warning("job %s still unpublished: %s", job_id, exc)
                async with self._sessions.begin() as session:
                    await queries.postpone_outbox(session, [job_id], delay=self._interval_s * 2)
                break
            confirmed.append(job_id)
            log.info("job %s published by the outbox relay", job_id)
        if confirmed:
            async with self._sessions.begin() as session:
                await queries.mark_published(session, confirmed)
        return len(confirmed)
