"""In-process wake-ups: a request waiting on a job hears about its result, and the delivery loop about work,
without polling the database."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable

from queue_gateway.runtime.supervise import woken


class Wakeups:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self.delivery = asyncio.Event()  # something may be due for delivery: wakes the delivery loop
        self.listeners: list[Callable[[str], None]] = []  # told of every change (the relay, the progress updater)

    def job_changed(self, job_id: str, *, deliverable: bool = False) -> None:
        """A job moved on (queued, started, finished, cancelled): wake whoever waits on it and the listeners.

        ``deliverable``: it may now have something for its chat (a result, a failure, a cancellation), so the
        delivery loop looks; other changes do not cost it a pass.
        """
        for event in self._waiters.pop(job_id, set()):
            event.set()
        if deliverable:
            self.delivery.set()
        for listener in self.listeners:
            listener(job_id)

    async def wait(self, job_id: str, within: float) -> bool:
        """Wait until ``job_changed(job_id)`` or the timeout; True when woken."""
        event = asyncio.Event()
        self._waiters[job_id].add(event)
        try:
            return await woken(event, within)
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[job_id]
