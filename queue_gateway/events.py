"""In-process wake-ups: a handler waiting on a job hears about its result without polling the database."""

from __future__ import annotations

import asyncio
from collections import defaultdict


class JobEvents:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self.finished = asyncio.Event()  # any job finished: wakes the delivery loop

    def notify(self, job_id: str) -> None:
        for event in self._waiters.pop(job_id, set()):
            event.set()
        self.finished.set()

    async def wait(self, job_id: str, within: float) -> bool:
        """Wait until ``notify(job_id)`` or the timeout; True when notified."""
        event = asyncio.Event()
        self._waiters[job_id].add(event)
        try:
            await asyncio.wait_for(event.wait(), within)
            return True
        except TimeoutError:
            return False
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[job_id]
