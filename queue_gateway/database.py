"""The gateway's database access: one session per unit of work, retried while the database is briefly away.

A request's work is a function of a session, so that it can run again in full: if Postgres restarts (or SQLite
is locked) in the middle, :meth:`Database.write` and :meth:`Database.read` try again with backoff for up to
``retry_s`` seconds, then raise :class:`~queue_gateway.errors.Unavailable` (503, ``Retry-After``). Every write
is safe to repeat: transitions are guarded, and intake skips rows an earlier try already committed.

The images live in the blob store beside it (:attr:`Database.blobs`). A write that removed rows naming files
(``db.blobs.release``) has those files collected once it committed: the rows go first, the files after.

The /stats rollups a write counts (``db.rollup``) are kept once it committed and written about once a second, many
writes' worth in one transaction (:meth:`Database.flush_rollups`): they cost a photo's transactions nothing, and a
crash loses at most the last second's counts (never a job).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

from db import blobs as blob_rows
from db import rollup
from db.blobstore import BlobStore
from queue_gateway.errors import Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[AsyncSession], Awaitable[T]]


# SQLSTATE classes of a server that is away for now: connection exceptions (08), and a server shutting down,
# crashed, or still starting up (57P01-57P05: "the database system is not yet accepting connections" while it
# recovers after a crash, which asyncpg reports as a plain DBAPIError)
OUTAGE_SQLSTATES = ("08", "57P")


def is_outage(error: BaseException) -> bool:
    """Whether an error means "the database is away (or busy) right now" rather than "this work is wrong"."""
    if isinstance(error, sa_exc.DBAPIError):
        sqlstate = str(getattr(error.orig, "sqlstate", None) or "")
        return (
            bool(error.connection_invalidated)
            or isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError)
            or sqlstate.startswith(OUTAGE_SQLSTATES)
        )
    return isinstance(error, OSError | ConnectionError | TimeoutError)


class Database:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], blobs: BlobStore, *, retry_s: float) -> None:
        self.sessions = sessions
        self.blobs = blobs
        self._retry_s = retry_s
        self._counted = rollup.Tally()  # committed, not written yet

    async def write(self, work: Work[T], *, retry_s: float | None = None) -> T:
        """Run ``work`` in a transaction that commits when it returns; then collect the files it stopped naming."""
        released: set[str] = set()
        counted = rollup.Tally()

        async def once() -> T:
            tally = rollup.Tally()
            async with self.sessions.begin() as session:
                session.info[rollup.TALLY] = tally
                result = await work(session)
                freed = blob_rows.released(session)
            released.clear()
            released.update(freed)  # the attempt that committed
            counted.take()
            counted.add(tally)
            return result

        result = await self._retrying(once, retry_s)
        self._counted.add(counted)
        if released:
            await self.collect(released)
        return result

    async def flush_rollups(self) -> None:
        """Write the counts of the writes committed since the last flush, in one transaction (kept on failure)."""
        taken = self._counted.take()
        if not taken:
            return
        try:
            async with self.sessions.begin() as session:
                await rollup.write(session, taken)
        except BaseException:
            self._counted.add(taken)  # the next flush tries again
            raise

    async def flush_rollups_every(self, seconds: float) -> None:
        """The background task: flush about every ``seconds`` (and once more when it is stopped)."""
        try:
            while True:
                await asyncio.sleep(seconds)  # a periodic write of counters, not a wait for work
                try:
                    await self.flush_rollups()
                except Exception as exc:  # the database is away: the counts wait for the next flush
                    log.warning("stats counters not written yet (%s)", type(exc).__name__)
        finally:
            with contextlib.suppress(Exception):
                await self.flush_rollups()

    async def collect(self, digests: set[str]) -> int:
        """Delete the files of these digests that no row names any more; return how many. A failure is only logged:
        retention's sweep deletes what is left."""
        try:
            gone = await self.write(lambda session: blob_rows.collect(session, self.blobs, digests), retry_s=2.0)
        except Exception as exc:
            log.warning("could not delete %d unnamed images now (%s); the sweep will", len(digests), type(exc).__name__)
            return 0
        return len(gone)

    async def read(self, work: Work[T], *, retry_s: float | None = None) -> T:
        """Run ``work`` in a session that only reads."""

        async def once() -> T:
            async with self.sessions() as session:
                return await work(session)

        return await self._retrying(once, retry_s)

    async def _retrying(self, once: Callable[[], Awaitable[T]], retry_s: float | None) -> T:
        window = self._retry_s if retry_s is None else retry_s
        try:  # the usual case, without building a retry loop for it (tenacity's costs 24 µs a call here)
            return await once()
        except Exception as error:
            if not is_outage(error):
                raise
            if window <= 0:
                raise _unavailable() from error
            log.warning("database unavailable (%s); retrying", type(error).__name__)
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(is_outage),
                stop=stop_after_delay(window),
                wait=wait_exponential_jitter(multiplier=0.1, max=2.0, jitter=0.1),
                before_sleep=_log_retry,
                reraise=True,
            ):
                with attempt:
                    return await once()
        except Exception as error:
            if is_outage(error):
                raise _unavailable() from error
            raise
        raise AssertionError("unreachable")  # pragma: no cover - AsyncRetrying returns or raises


def _unavailable() -> Unavailable:
    return Unavailable("The database is unavailable right now. Please try again in a moment.", retry_after=5)


def _log_retry(state: object) -> None:
    outcome = getattr(state, "outcome", None)
    error = outcome.exception() if outcome is not None else None
    log.warning("database unavailable (%s); retrying", type(error).__name__ if error else "?")
