"""Whether any worker is running: the job queue's consumer count, counted by every replica (the broker knows it),
and since when none has run. The photos in line say so after ``notice_s`` (:mod:`queue_gateway.words`), the admins
hear of it (:mod:`queue_gateway.notify.admins`). Nothing about a waiting photo changes: it stays in line, safe,
for as long as it takes, and is done as soon as a worker starts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from queue_gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)


class WorkerWatch:
    """How many workers consume the job queue now, and since when none has."""

    def __init__(self, *, notice_s: float, clock: Callable[[], float] = time.time) -> None:
        self._notice_s = notice_s
        self._clock = clock
        self.online: int | None = None  # None until the broker has been asked
        self.gone_since: float | None = None  # when the count last fell to zero (or the gateway found it at zero)

    def observe(self, consumers: int | None) -> None:
        """The broker's count of the job queue's consumers (None: no broker now; what was known stands)."""
        if consumers is None:
            return
        if consumers > 0:
            self.gone_since = None
        elif self.gone_since is None:
            self.gone_since = self._clock()
        self.online = consumers

    def gone_for(self) -> float:
        """Seconds since the last worker went away (0 while one runs)."""
        return 0.0 if self.gone_since is None else max(0.0, self._clock() - self.gone_since)

    def waiting_for_worker(self) -> bool:
        """Whether the photos in line should say that no worker is running (none for ``notice_s``)."""
        return self.gone_since is not None and self.gone_for() >= self._notice_s

    def noticed_since(self) -> float | None:
        """When the photos in line began to say so (a photo received before that was told its place in line)."""
        return None if self.gone_since is None else self.gone_since + self._notice_s


async def follow_workers(
    count: Callable[[], Awaitable[int | None]],
    watch: WorkerWatch,
    metrics: GatewayMetrics,
    on_count: Sequence[Callable[[int], None]],
    check: Callable[[], Awaitable[None]],
    *,
    every_s: float,
) -> None:
    """Count the queue's consumers every ``every_s``: the watch, the gauge and the estimate hear, then ``check``
    (the admins' alerts) looks."""
    while True:
        found = await count()
        watch.observe(found)
        if found is not None:
            metrics.workers_online.set(found)
            for listener in on_count:
                listener(found)
        try:
            await check()
        except Exception as exc:  # the database is away: the next count tries again
            log.warning("worker alert check failed (%s)", type(exc).__name__)
        await asyncio.sleep(every_s)  # a periodic count, not a wait for work
