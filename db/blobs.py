"""The rows that name files of the blob store, and when a file may go: a row never names a missing file.

- **Adding a name.** The bytes are put in the store (written and synced) before the transaction. Inside it,
  :func:`hold` locks the files' rows in ``blob_files`` and checks that each file is still there (one that a
  collector took meanwhile is written again from the bytes in hand); then the rows that name them commit.
- **Removing a name.** The rows go first: the transaction that deletes them notes their digests
  (:func:`release`), and after it commits, :func:`collect` runs in a transaction of its own: it locks the same
  ``blob_files`` rows, deletes those that no row names any more, deletes their files, and commits.

Both lock a file's ``blob_files`` row before they look, so the database puts them in order: a collector that
locked first has deleted the file by the time the adder looks (the adder writes it again); an adder that locked
first has committed its row by the time the collector looks (the file stays). On Postgres the lock is the row's
(the upsert takes it; rows are locked in digest order, so two transactions never wait for each other in a
circle); on SQLite the upsert takes the database's one write lock. Two jobs with the same photo name one file;
it goes when the last name does.

What no row names because a process died between the put and the commit, or an upload was refused, is found by
the sweep (:func:`unnamed`, :func:`stale`), which retention runs with a grace period.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.blobstore import BlobStore
from db.common import dialect_insert, now
from db.models import BLOB_FILES, Blob, BlobFile

RELEASED = "detectbot.released_blobs"  # the session's ``info`` key: digests whose names this transaction removed


async def lock(session: AsyncSession, digests: Iterable[str], *, at: float | None = None) -> list[str]:
    """Lock the ``blob_files`` rows of these digests until the transaction ends (creating those that are new, and
    marking them touched now); return the digests, in the order they were locked."""
    ordered = sorted(set(digests))
    if not ordered:
        return ordered
    at = now() if at is None else at
    rows = [{"digest": digest, "touched_at": at} for digest in ordered]
    await session.execute(_lock_files(session.get_bind().dialect.name), rows)
    return ordered


@functools.cache
def _lock_files(dialect: str) -> Any:
    """The upsert that creates or touches ``blob_files`` rows, built once per database dialect."""
    insert = dialect_insert(dialect, BLOB_FILES)
    return insert.on_conflict_do_update(
        index_elements=[BLOB_FILES.c.digest], set_={"touched_at": insert.excluded.touched_at}
    )


async def hold(
    session: AsyncSession, store: BlobStore, blobs: Mapping[str, bytes | None], *, at: float | None = None
) -> set[str]:
    """Lock these files for the transaction and make sure each is in the store: one that a collector took since it
    was put is written again from the bytes given. Return the digests missing with no bytes given (a row must not
    name those)."""
    await lock(session, blobs, at=at)
    lost = set()
    for digest in await store.missing(list(blobs)):
        data = blobs[digest]
        if data is None:
            lost.add(digest)
        elif await store.put(data) != digest:
            raise ValueError(f"the bytes given for blob {digest} have another digest")
    return lost


def release(session: AsyncSession, digests: Iterable[str]) -> None:
    """This transaction removed names of these files: the gateway collects them after it commits."""
    session.info.setdefault(RELEASED, set()).update(digests)


def released(session: AsyncSession) -> set[str]:
    return set(session.info.get(RELEASED, ()))


async def collect(session: AsyncSession, store: BlobStore, digests: Iterable[str]) -> list[str]:
    """Delete the files of these digests that no row names, with their ``blob_files`` rows; return those deleted.

    Runs in the caller's transaction, which commits afterwards (if that commit fails, rows of ``blob_files`` that no
    row names are left without their files: harmless, an adder writes the file again, and :func:`stale` finds
    them)."""
    ordered = await lock(session, digests)
    if not ordered:
        return []
    named = exists().where(Blob.digest == BlobFile.digest)
    rows = await session.execute(
        delete(BlobFile).where(BlobFile.digest.in_(ordered), ~named).returning(BlobFile.digest)
    )
    gone = sorted(str(digest) for digest in rows.scalars())
    await store.delete(gone)
    return gone


async def is_named(session: AsyncSession, digest: str) -> bool:
    """Whether a row names this digest."""
    return bool(await session.scalar(select(exists().where(Blob.digest == digest))))


async def unnamed(session: AsyncSession, digests: Collection[str]) -> list[str]:
    """Which of these digests no row names."""
    if not digests:
        return []
    rows = await session.execute(select(Blob.digest).where(Blob.digest.in_(digests)).distinct())
    return sorted(set(digests) - {str(digest) for digest in rows.scalars()})


async def stale(session: AsyncSession, *, touched_before: float, limit: int = 500) -> list[str]:
    """``blob_files`` rows that no row names and that nobody touched since ``touched_before`` (a collect whose
    commit failed, a cached result that was gone when a job wanted it)."""
    named = exists().where(Blob.digest == BlobFile.digest)
    rows = await session.execute(
        select(BlobFile.digest).where(BlobFile.touched_at < touched_before, ~named).limit(limit)
    )
    return [str(digest) for digest in rows.scalars()]


def blob_row(job_id: str, kind: str, digest: str, content_type: str, size: int, at: float) -> dict[str, Any]:
    """A ``blobs`` row: this job's input or result is the file ``digest``."""
    return {"job_id": job_id, "kind": kind, "digest": digest, "content_type": content_type, "size": size,
            "created_at": at}  # fmt: skip


async def names_after(session: AsyncSession, after: str, *, jobs: int = 500) -> list[tuple[str, str]]:
    """(job id, digest) of every ``blobs`` row of the next ``jobs`` jobs after the job id ``after``, in job order
    (to walk every row in batches)."""
    ids = select(Blob.job_id).where(Blob.job_id > after).group_by(Blob.job_id).order_by(Blob.job_id).limit(jobs)
    rows = await session.execute(
        select(Blob.job_id, Blob.digest).where(Blob.job_id.in_(ids.scalar_subquery())).order_by(Blob.job_id)
    )
    return [(str(job_id), str(digest)) for job_id, digest in rows]
