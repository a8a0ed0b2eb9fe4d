"""The dead-letter consumer: a message the broker gave up on marks its job ``dead``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from sqlalchemy.ext.asyncio import AsyncSession

from db import jobs, transitions
from db.common import Outcome
from queue_gateway.database import Database
from queue_gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)


def death_reason(headers: dict[str, Any], attempts: int) -> str:
    """A sentence from the broker's ``x-death`` / ``x-first-death-reason`` headers and our attempt count."""
    reason = str(headers.get("x-first-death-reason") or "")
    deaths = headers.get("x-death") or []
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        reason = reason or str(deaths[0].get("reason") or "")
    if reason in ("delivery_limit", "rejected") and attempts > 1:
        return f"it stopped the worker {attempts} times in a row"
    if reason == "delivery_limit":
        return "workers kept failing on it"
    if reason == "rejected":
        return "a worker could not process it"
    if reason == "expired":
        return "it waited in the queue too long"
    return f"the broker dead-lettered it ({reason or 'unknown reason'})"


class DeadLetterConsumer:
    """Consumes ``<queue>.dead``; a message is acked only once its job is marked (the database retried)."""

    def __init__(self, database: Database, metrics: GatewayMetrics, on_changed: Callable[[str], None]) -> None:
        self._db = database
        self._metrics = metrics
        self._on_changed = on_changed
        self.queue: AbstractQueue | None = None  # kept referenced so aio-pika restores the consumer

    async def start(self, queue: AbstractQueue) -> None:
        self.queue = queue
        await queue.consume(self.on_message)

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        async with message.process(requeue=True):
            job_id = message.message_id
            if not job_id:
                log.error("dead letter without a message id dropped")
                return
            headers = dict(message.headers or {})

            async def mark(session: AsyncSession) -> tuple[str, Outcome]:
                job = await jobs.get_job(session, job_id)
                if job is not None and job.error_code == "timeout" and job.error:
                    reason = f"{job.error}, {job.attempts} times"
                    return reason, await transitions.mark_dead(session, job_id, reason=reason, code="timeout")
                reason = death_reason(headers, job.attempts if job else 0)
                return reason, await transitions.mark_dead(session, job_id, reason=reason)

            reason, outcome = await self._db.write(mark)
            log.warning("job %s dead-lettered: %s (%s)", job_id, reason, outcome.value)
            if outcome is Outcome.APPLIED:
                self._metrics.jobs_finished.labels(status="dead").inc()
                self._on_changed(job_id)
