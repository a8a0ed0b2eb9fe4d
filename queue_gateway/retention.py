"""Retention: the photos and results of jobs older than ``retention_days`` are deleted; what was found in them
stays in their sender's /history until ``history_days``, then everything in the rows that names a person or a
chat goes too, and the anonymous rows stay for the stats.

Each pass also sweeps the blob store: a file that no row names and that nobody stored for ``grace_s`` (an upload
refused after its photo was stored, a crash between storing a photo and recording its job, a deletion whose
collection failed) is deleted, and so are the leftovers of interrupted writes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from db import blobs, operations
from db.common import now
from queue_gateway.database import Database

log = logging.getLogger(__name__)

SWEEP_BATCH = 500  # digests looked up (and collected) per transaction


@dataclass(frozen=True, slots=True)
class Swept:
    files: int  # unnamed files deleted
    records: int  # blob_files rows without a name (and without a file) removed
    partial: int  # leftovers of interrupted writes


class Retention:
    def __init__(
        self, database: Database, *, days: float, every_s: float, history_days: float = 0.0, grace_s: float = 3600.0
    ) -> None:
        self._db = database
        self._keep_s = days * 86400
        self._names_s = max(days, history_days) * 86400
        self._every_s = every_s
        self._grace_s = grace_s

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

    async def sweep_once(self) -> Swept:
        """Delete the blob store's files that no row names and that were not stored in the last ``grace_s``."""
        store = self._db.blobs
        cutoff = now() - self._grace_s
        files = records = 0
        old = await store.older_than(cutoff)
        for start in range(0, len(old), SWEEP_BATCH):
            files += await self._collect_unnamed(old[start : start + SWEEP_BATCH])
        while stale := await self._db.read(lambda session: blobs.stale(session, touched_before=cutoff)):
            records += len(await self._collect(stale))
            if len(stale) < SWEEP_BATCH:
                break
        partial = await store.clean(cutoff)
        if files or records or partial:
            log.info("blob sweep: deleted %d unnamed files, %d empty records, %d interrupted writes",
                     files, records, partial)  # fmt: skip
        return Swept(files, records, partial)

    async def _collect_unnamed(self, digests: list[str]) -> int:
        unnamed = await self._db.read(lambda session: blobs.unnamed(session, digests))
        return len(await self._collect(unnamed)) if unnamed else 0

    async def _collect(self, digests: list[str]) -> list[str]:
        return await self._db.write(lambda session: blobs.collect(session, self._db.blobs, digests))

    async def run(self) -> None:
        while True:
            try:
                await self.purge_once()
                await self.sweep_once()
            except Exception as exc:  # the database is away: the next pass catches up
                log.warning("retention pass failed (%s); trying again in %.0f s", type(exc).__name__, self._every_s)
            await asyncio.sleep(self._every_s)  # a periodic chore, not a wait for work
