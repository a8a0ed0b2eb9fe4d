"""``detectbot blobs check``: does every row that names a file of the blob store find it there?

After a restore, rows may name files that the blob directory's copy lacks: photos deleted (``/forget``,
retention) while the backup ran, between the database dump and the copy of the directory (docs/operations.md).
Those jobs' photos are gone, as their senders or the retention asked; ``--repair`` finishes their deletion the way
``/forget`` does, so that no row names a missing file again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from db import blobs, operations
from db.engine import create_engine, session_factory
from queue_gateway.app import StartupError, open_blob_store
from queue_gateway.database import Database
from queue_gateway.settings import GatewaySettings

REPAIR_BATCH = 500
LOST = "its photo was not in the blob store (deleted while a backup was taken, or lost)"


@dataclass
class Checked:
    rows: int = 0  # rows that name a file
    jobs: int = 0  # jobs with at least one such row
    lost: list[str] = field(default_factory=list)  # jobs with a row whose file is missing
    repaired: bool = False


async def check_blobs(settings: GatewaySettings, *, repair: bool) -> Checked:
    """Look up the file of every ``blobs`` row; with ``repair``, delete what is left of the jobs whose files are
    missing (as ``/forget`` does). Reads the rows in batches; the database must be at the current schema.

    A blob directory that does not exist, or in which not one named file is found, is taken for a mistake in
    ``DETECTBOT_BLOB_DIR`` (or a volume not mounted), and nothing is repaired."""
    if not settings.blob_store().root.is_dir():
        raise StartupError(f"the blob directory {settings.blob_store().root} does not exist (check DETECTBOT_BLOB_DIR)")
    store = await open_blob_store(settings)
    engine = create_engine(settings.database_url)
    database = Database(session_factory(engine), store, retry_s=settings.database_retry_s)
    checked = Checked()
    try:
        after = ""
        while names := await _names_after(database, after):
            after = names[-1][0]
            missing = await store.missing({digest for _, digest in names})
            checked.rows += len(names)
            checked.jobs += len({job_id for job_id, _ in names})
            checked.lost.extend(sorted({job_id for job_id, digest in names if digest in missing}))
        if repair and checked.lost and len(checked.lost) == checked.jobs:
            raise StartupError(
                f"not one of the {checked.jobs} jobs' files is in {store.root}: is DETECTBOT_BLOB_DIR right, and its "
                "volume mounted? Nothing was repaired"
            )
        if repair and checked.lost:
            for start in range(0, len(checked.lost), REPAIR_BATCH):
                await _forget(database, checked.lost[start : start + REPAIR_BATCH])
            checked.repaired = True
    finally:
        await engine.dispose()
    return checked


async def _names_after(database: Database, after: str) -> list[tuple[str, str]]:
    return await database.read(lambda session: blobs.names_after(session, after))


async def _forget(database: Database, job_ids: list[str]) -> None:
    await database.write(lambda session: operations.forget_jobs(session, job_ids, reason=LOST))
