"""Long-polls (``GET /v1/jobs/{id}?wait=N``), bounded: a cap on the requests held open at once, in all and per
client, and one database read a second for all of them together (a job may change on another replica), however
many wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import Counter
from collections.abc import Iterator

from db import jobs
from queue_gateway.database import Database
from queue_gateway.errors import TooManyInLine
from queue_gateway.public.contract import ErrorCode
from queue_gateway.runtime.supervise import Backoff
from queue_gateway.wakeups import Wakeups

log = logging.getLogger(__name__)


class LongPolls:
    def __init__(
        self, database: Database, wakeups: Wakeups, *, max_waiting: int, per_client: int, every_s: float = 1.0
    ) -> None:
        self._db = database
        self._wakeups = wakeups
        self._max_waiting = max_waiting
        self._per_client = per_client
        self._every_s = every_s
        self._clients: Counter[str] = Counter()
        self._jobs: Counter[str] = Counter()
        self._seen: dict[str, str] = {}  # job id -> the status last read
        self._anyone = asyncio.Event()

    @property
    def waiting(self) -> int:
        return sum(self._clients.values())

    @contextlib.contextmanager
    def hold(self, client: str, job_id: str, status: str) -> Iterator[None]:
        """One long-poll of ``client`` on ``job_id`` (now ``status``); 429 when too many are held already."""
        if self.waiting >= self._max_waiting or self._clients[client] >= self._per_client:
            raise TooManyInLine(
                "Too many requests are waiting for their jobs at once. Please try again shortly.",
                retry_after=5,
                code=ErrorCode.TOO_MANY_WAITING,
            )
        self._clients[client] += 1
        self._jobs[job_id] += 1
        self._seen.setdefault(job_id, status)
        self._anyone.set()
        try:
            yield
        finally:
            for counter, key in ((self._clients, client), (self._jobs, job_id)):
                counter[key] -= 1
                if counter[key] <= 0:
                    del counter[key]
            if job_id not in self._jobs:
                self._seen.pop(job_id, None)

    async def run(self) -> None:
        """Once a second, while anyone waits: one read of every watched job's status; wake those that changed."""
        backoff = Backoff()
        while True:
            if not self._jobs:
                self._anyone.clear()
                await self._anyone.wait()
            try:
                found = await self._db.read(functools.partial(jobs.statuses, job_ids=sorted(self._jobs)), retry_s=0)
                backoff.reset()
            except Exception as exc:  # the database is away: those waiting time out as usual meanwhile
                log.debug("long-poll watch failed (%s)", type(exc).__name__)
                await backoff.wait()
                continue
            for job_id, status in found.items():
                if job_id in self._seen and self._seen[job_id] != status:
                    self._seen[job_id] = status
                    self._wakeups.job_changed(job_id)
            await asyncio.sleep(self._every_s)  # a periodic look at other replicas' changes, not a wait for work
