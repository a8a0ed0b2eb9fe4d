"""The delivery loop: finished chat jobs go back to their chat, in order per chat, paced, retried, never twice.

A job is due when ``next_delivery_at`` has passed. The loop leases it (so gateway replicas do not collide),
hands it to the platform's notifier, records each completed step at once (the receipt), and marks it
delivered. An album is delivered when its last photo finishes, as one message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import deliveries, queries
from db.models import ACTIVE, Job, JobStatus
from queue_gateway import texts
from queue_gateway.contract import Origin
from queue_gateway.events import JobEvents
from queue_gateway.metrics import GatewayMetrics
from queue_gateway.notify.base import Delivery, Item, Notifier, RetryLater, Undeliverable

log = logging.getLogger(__name__)

LEASE_S = 120.0
BATCH = 50


class Pacer:
    """At most one delivery per ``interval`` seconds to the same chat, and one at a time."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._last: dict[str, float] = {}

    @contextlib.asynccontextmanager
    async def slot(self, chat: str) -> Any:
        async with self._locks[chat]:
            wait = self._last.get(chat, 0.0) + self._interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # pacing a chat, not waiting for work
            try:
                yield
            finally:
                self._last[chat] = time.monotonic()


class DeliveryLoop:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        notifiers: Mapping[str, Notifier],
        events: JobEvents,
        *,
        concurrency: int = 8,
        max_attempts: int = 12,
        chat_interval_s: float = 1.0,
        poll_s: float = 1.0,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self._sessions = sessions
        self._notifiers = notifiers
        self._events = events
        self._limit = asyncio.Semaphore(concurrency)
        self._max_attempts = max_attempts
        self._pacer = Pacer(chat_interval_s)
        self._poll_s = poll_s
        self._metrics = metrics or GatewayMetrics()

    async def run(self) -> None:
        while True:
            self._events.finished.clear()
            try:
                await self.run_once()
            except Exception:
                log.exception("delivery pass failed")
            await self._sleep_until_due()

    async def _sleep_until_due(self) -> None:
        async with self._sessions() as session:
            due = await deliveries.next_delivery_time(session)
        pause = self._poll_s if due is None else min(self._poll_s, max(0.0, due - queries.now()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._events.finished.wait(), pause)

    async def run_once(self) -> int:
        """Deliver everything due now; return how many deliveries were attempted."""
        async with self._sessions() as session:
            due = await deliveries.due_deliveries(session, at=queries.now(), limit=BATCH)
        units: dict[str, Job] = {}
        for job in due:
            units.setdefault(job.group_key or job.id, job)
        await asyncio.gather(*(self._guarded(job) for job in units.values()))
        return len(units)

    async def _guarded(self, job: Job) -> None:
        async with self._limit:
            try:
                await self._deliver(job)
            except Exception:
                log.exception("job %s: delivery crashed; retrying later", job.id)
                async with self._sessions.begin() as session:
                    await deliveries.delivery_retry(session, [job.id], after=30.0, error="internal error")

    async def _deliver(self, job: Job) -> None:
        members = await self._members(job)
        if members is None:
            return
        job_ids = [m.id for m in members]
        notifier = self._notifiers.get(job.platform)
        if notifier is None:
            await self._abandon(job_ids, f"no {job.platform} notifier is configured (set its token)")
            return
        async with self._sessions.begin() as session:
            if not await deliveries.lease(session, job_ids, at=queries.now(), seconds=LEASE_S):
                return
        members = await self._fresh(job_ids)
        delivery = await self._build(members)

        async def checkpoint(receipt: dict[str, Any]) -> None:
            async with self._sessions.begin() as session:
                await deliveries.save_receipt(session, job_ids, receipt)

        chat = f"{job.platform}:{delivery.origin.chat_id or delivery.origin.channel_id}"
        try:
            async with self._pacer.slot(chat):
                receipt = await notifier.deliver(delivery, checkpoint)
        except RetryLater as exc:
            if exc.after is not None:
                self._metrics.rate_limited.labels(platform=job.platform).inc()
            await self._retry(members, exc)
            return
        except Undeliverable as exc:
            await self._abandon(job_ids, str(exc))
            return
        async with self._sessions.begin() as session:
            await deliveries.delivered(session, job_ids, receipt)
        log.info("job %s delivered to %s", ", ".join(job_ids), chat)
        self._metrics.deliveries.labels(platform=job.platform, outcome="delivered").inc()
        await self._status_raced(job_ids)

    async def _members(self, job: Job) -> list[Job] | None:
        """The jobs to deliver together; None while an album still has photos in progress."""
        if not job.group_key or job.group_size <= 1:
            return [job]
        async with self._sessions.begin() as session:
            members = await queries.jobs_in_group(session, job.group_key)
            if len(members) < job.group_size or any(m.status in ACTIVE for m in members):
                for member in members:
                    if member.status not in ACTIVE:
                        await deliveries.park(session, member.id)
                return None
        return members

    async def _fresh(self, job_ids: list[str]) -> list[Job]:
        async with self._sessions() as session:
            jobs = [await queries.get_job(session, job_id) for job_id in job_ids]
        return [job for job in jobs if job is not None]

    async def _build(self, members: list[Job]) -> Delivery:
        origin = Origin.model_validate(members[0].origin or {"platform": members[0].platform})
        lang = origin.language
        items = []
        async with self._sessions() as session:
            for member in members:
                blob = await queries.get_blob(session, member.id, "result") if member.detections is not None else None
                member_origin = member.origin or {}
                items.append(
                    Item(
                        job_id=member.id,
                        ok=blob is not None,
                        caption=_caption(member, lang),
                        image=blob.data if blob else None,
                        message_id=member_origin.get("message_id"),
                    )
                )
        finished = max((m.done_at or m.failed_at or m.dead_at or m.received_at) for m in members)
        started = min(m.received_at for m in members)
        ok = all(item.ok for item in items)
        status = texts.text("done_in", lang, seconds=finished - started) if ok else texts.text("failed_short", lang)
        receipt = dict(members[0].delivery_receipt or {})
        return Delivery(origin=origin, items=items, status_text=status, receipt=receipt)

    async def _retry(self, members: list[Job], exc: RetryLater) -> None:
        attempts = max(m.delivery_attempts for m in members) + 1
        job_ids = [m.id for m in members]
        if attempts >= self._max_attempts:
            await self._abandon(job_ids, f"gave up after {attempts} tries: {exc.reason}")
            return
        after = exc.after if exc.after is not None else min(2.0**attempts, 300.0)
        log.warning("job %s: delivery failed (%s); retrying in %.1f s", ", ".join(job_ids), exc.reason, after)
        self._metrics.deliveries.labels(platform=members[0].platform, outcome="retry").inc()
        async with self._sessions.begin() as session:
            await deliveries.delivery_retry(session, job_ids, after=after, error=exc.reason)

    async def _abandon(self, job_ids: list[str], reason: str) -> None:
        log.error("job %s: not delivered: %s", ", ".join(job_ids), reason)
        self._metrics.deliveries.labels(platform="any", outcome="abandoned").inc()
        async with self._sessions.begin() as session:
            await deliveries.delivery_abandoned(session, job_ids, error=reason)

    async def _status_raced(self, job_ids: list[str]) -> None:
        """The bot may have named its status message while we were sending: if so, edit it now."""
        async with self._sessions.begin() as session:
            for job_id in job_ids:
                job = await queries.get_job(session, job_id)
                if (
                    job
                    and (job.origin or {}).get("status_message_id")
                    and not (job.delivery_receipt or {}).get("status_done")
                ):
                    await deliveries.delivery_retry(session, [job_id], after=0.0, error="status message pending")
                    self._events.finished.set()


def _caption(job: Job, lang: str | None) -> str:
    if job.detections is not None:
        return texts.caption(job.detections, lang)
    reason = job.error or "unknown error"
    key = "dead" if job.status == JobStatus.DEAD else "failed"
    return texts.text(key, lang, reason=_friendly_reason(job.error_code, reason, lang))


def _friendly_reason(code: str | None, reason: str, lang: str | None) -> str:
    if code == "bad_image":
        return texts.text("bad_image", lang)
    return reason
