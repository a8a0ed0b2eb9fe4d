"""Retention: the photos and results of jobs older than ``retention_days`` are deleted; what was found in them
stays in their sender's /history until ``history_days``, then everything in the rows that names a person or a
chat goes too, and the anonymous rows stay for the stats."""

from __future__ import annotations

import asyncio
import logging

from db import operations
from db.common import now
from queue_gateway.database import Database

log = logging.getLogger(__name__)


class Retention:
    def __init__(self, database: Database, *, days: float, every_s: float, history_days: float = 0.0) -> None:
        self._db = database
        self._keep_s = days * 86400
        self._names_s = max(days, history_days) * 86400
        self._every_s = every_s

    async def purge_once(self) -> int:
        """Delete everything past the cut-off, in batches; return how many jobs lost their images."""
        at = now()
        cutoff, names = at - self._keep_s, at - self._names_s
        total = 0
        while True:
            purged = await self._db.write(
                lambda session: operations.expire(session, older_than=cutoff, names_older_than=names)
            )
            total += purged
            if not purged:
                break
        if total:
            log.info("retention: deleted the images of %d jobs older than %.1f days", total, self._keep_s / 86400)
        return total

    async def run(self) -> None:
        while True:
            try:
                await self.purge_once()
            except Exception as exc:  # the database is away: the next pass catches up
                log.warning("retention pass failed (%s); trying again in %.0f s", type(exc).__name__, self._every_s)
            await asyncio.sleep(self._every_s)  # a periodic chore, not a wait for work
