"""The outbox relay: publishes jobs that are stored but not confirmed by the broker.

That is whatever a crash or a broker outage left in ``received`` (after a grace period, so as not to race the
batcher that is publishing it right now), and the photos held back for fairness once their sender's earlier
ones have moved on. It runs every ``interval_s``, and at once when woken: the broker came back, a publish
failed, a job moved on.

A job that has waited in the queue for half its worker links' lifetime (no worker ran for a long time) is
published again with links of a new generation; the old message's links then find nothing left to do, and a
worker drops it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from db import outbox
from db.common import now
from queue_gateway.database import Database
from queue_gateway.public.contract import ClipReturn, DetectParams
from queue_gateway.publisher import BrokerUnavailable, Publisher, QueueFull, clip_return
from queue_gateway.runtime.supervise import Backoff, woken

log = logging.getLogger(__name__)

BATCH = 100
REFRESH_EVERY_S = 60.0


class _Due(NamedTuple):
    """A job the relay publishes: what its message needs."""

    job_id: str
    link_gen: int
    params: DetectParams
    traceparent: str | None
    clip: ClipReturn | None


class OutboxRelay:
    def __init__(
        self,
        database: Database,
        publisher: Publisher,
        *,
        interval_s: float,
        grace_s: float,
        fair_share: Callable[[str], int] = lambda _user: 2,
        link_ttl_s: float = 24 * 3600,
        publishing: Collection[str] = frozenset(),
    ) -> None:
        self._db = database
        self._publishing = publishing  # what intake is publishing right now: not the relay's to take over
        self._publisher = publisher
        self._interval_s = interval_s
        self._grace_s = grace_s
        self._fair_share = fair_share
        self._link_ttl_s = link_ttl_s
        self._next_refresh = 0.0
        self._wake = asyncio.Event()
        self._urgent = False
        self._holding = False

    def wake(self, *, urgent: bool = False) -> None:
        """Look now; ``urgent``: also take over jobs younger than the grace period (their publish failed)."""
        self._urgent = self._urgent or urgent
        self._wake.set()

    def hold(self) -> None:
        """Intake held photos back for fairness: look again whenever a job moves on."""
        self._holding = True

    def wake_if_holding(self) -> None:
        if self._holding:
            self._wake.set()

    async def run(self) -> None:
        backoff = Backoff()
        while True:
            try:
                published = await self.relay_once(grace_s=0.0 if self._urgent else None)
                self._urgent = False
                backoff.reset()
            except Exception as exc:
                log.warning("outbox relay pass failed (%s); retrying", type(exc).__name__)
                await backoff.wait()
                continue
            if published < BATCH:
                self._wake.clear()
                await woken(self._wake, self._interval_s)

    async def relay_once(self, *, grace_s: float | None = None) -> int:
        """Publish what is due; return how many were confirmed."""
        grace = self._grace_s if grace_s is None else grace_s
        if now() >= self._next_refresh:  # at most once a minute: jobs whose worker links are getting old
            self._next_refresh = now() + REFRESH_EVERY_S
            cutoff = now() - self._link_ttl_s / 2
            refreshed = await self._db.write(lambda session: outbox.refresh_links(session, queued_before=cutoff))
            if refreshed:
                log.info("%d job(s) waited long in the queue: published again with new worker links", refreshed)

        async def due(session: AsyncSession) -> tuple[list[_Due], bool]:
            found, holding = await outbox.publishable(
                session, limit=BATCH, older_than=now() - grace, fair_share=self._fair_share
            )
            return [
                _Due(job.id, job.link_gen, DetectParams.model_validate(job.params), job.traceparent,
                     clip_return(job.media, job.platform))
                for job in found if job.id not in self._publishing
            ], holding  # fmt: skip

        publishable, self._holding = await self._db.read(due, retry_s=0)
        confirmed: list[str] = []
        for job_id, link_gen, params, traceparent, clip in publishable:
            try:
                await self._publisher.publish(job_id, params, link_gen=link_gen, traceparent=traceparent, clip=clip)
            except (QueueFull, BrokerUnavailable) as exc:
                log.warning("job %s still unpublished: %s", job_id, exc)
                break
            confirmed.append(job_id)
            log.info("job %s published by the outbox relay", job_id)
        if confirmed:
            await self._db.write(lambda session: outbox.mark_published(session, confirmed), retry_s=5)
        return len(confirmed)
