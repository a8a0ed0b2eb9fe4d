"""Retention: stored photos and results older than ``retention_days`` are deleted; job rows stay for stats."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import operations, queries

log = logging.getLogger(__name__)


class Retention:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, days: float, every_s: float) -> None:
        self._sessions = sessions
        self._keep_s = days * 86400
        self._every_s = every_s

    async def purge_once(self) -> int:
        """Delete everything past the cut-off, in batches; return how many jobs lost their images."""
        cutoff = queries.now() - self._keep_s
        total = 0
        while True:
            async with self._sessions.begin() as session:
                purged = await operations.purge_blobs(session, older_than=cutoff)
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
            except Exception:
                log.exception("retention pass failed")
            await asyncio.sleep(self._every_s)  # a periodic chore, not a wait for work
