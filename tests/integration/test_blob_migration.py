"""Revision 0006 on the real SQLite and Postgres: a database of the previous release, with photos in it, comes out
with every photo in the blob store and no image bytes left in the database; an interrupted run changes nothing
and the next one finishes; going back puts the bytes back."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from db import migrate
from db.blobstore import FileBlobStore, digest_of
from db.engine import create_engine
from db.models import Job
from tests.seed import Seeded, job_row

PREVIOUS = "0005"  # the revision before the blob store


class FailingStore(FileBlobStore):
    """A blob store whose disk fills up after ``room`` photos (``OSError``, as a full volume raises)."""

    def __init__(self, root: Path, room: int) -> None:
        super().__init__(root)
        self.room = room

    def put_blocking(self, data: bytes) -> str:
        if self.room == 0:
            raise OSError(28, "No space left on device")
        self.room -= 1
        return super().put_blocking(data)


def photos() -> dict[tuple[str, str], bytes]:
    """(job, kind) -> bytes of a database of the previous release: 7 jobs, inputs and results, two jobs with the
    same photo, one photo of 3 MB."""
    jobs = [uuid.uuid4().hex for _ in range(7)]
    stored = {}
    for n, job_id in enumerate(jobs):
        stored[(job_id, "input")] = b"\xff\xd8 photo %d " % n + os.urandom(2000)
        if n % 2 == 0:
            stored[(job_id, "result")] = b"\xff\xd8 result %d " % n + os.urandom(1000)
    stored[(jobs[1], "input")] = stored[(jobs[0], "input")]  # the same photo twice
    stored[(jobs[6], "input")] = os.urandom(3 * 1024 * 1024)
    return stored


async def seed_previous_release(url: str, stored: dict[tuple[str, str], bytes]) -> None:
    await migrate.upgrade(url, PREVIOUS)
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            for job_id in sorted({job_id for job_id, _ in stored}):
                row = job_row(Seeded("http", "done", 1_700_000_000.0, 1.0, 1.0)) | {"id": job_id}
                await connection.execute(insert(Job), [row])
            await connection.execute(
                text(
                    "INSERT INTO blobs (job_id, kind, content_type, data, size, created_at) "
                    "VALUES (:job_id, :kind, 'image/jpeg', :data, :size, 1700000000.0)"
                ),
                [{"job_id": j, "kind": k, "data": data, "size": len(data)} for (j, k), data in stored.items()],
            )
    finally:
        await engine.dispose()


async def columns(engine: AsyncEngine, table: str) -> set[str]:
    async with engine.connect() as connection:
        found = await connection.run_sync(lambda sync: inspect(sync).get_columns(table))
    return {column["name"] for column in found}


async def database_state(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        state: dict[str, Any] = {"blob_columns": await columns(engine, "blobs")}
        async with engine.connect() as connection:
            state["revision"] = await connection.scalar(text("SELECT version_num FROM alembic_version"))
            if "digest" in state["blob_columns"]:
                rows = (await connection.execute(text("SELECT job_id, kind, digest, size FROM blobs"))).all()
                state["rows"] = {(j, k): (d, s) for j, k, d, s in rows}
                state["files"] = set((await connection.execute(text("SELECT digest FROM blob_files"))).scalars())
        return state
    finally:
        await engine.dispose()


async def test_the_migration_moves_every_photo_out_and_leaves_no_bytes_behind(
    database_url: str, tmp_path: Path
) -> None:
    stored = photos()
    await seed_previous_release(database_url, stored)
    store = FileBlobStore(tmp_path / "blobs")
    store.prepare()

    await migrate.upgrade(database_url, blobs=store)

    state = await database_state(database_url)
    assert state["revision"] == migrate.head_revision()
    assert "data" not in state["blob_columns"]  # no image bytes in the database
    assert state["rows"] == {key: (digest_of(data), len(data)) for key, data in stored.items()}
    assert state["files"] == {digest_of(data) for data in stored.values()}  # one per distinct photo
    for data in stored.values():
        assert store.path(digest_of(data)).read_bytes() == data
    assert len(list(store.root.glob("??/??/*"))) == len(set(stored.values())) == len(stored) - 1


async def test_an_interrupted_migration_changes_nothing_and_the_next_run_finishes(
    database_url: str, tmp_path: Path
) -> None:
    stored = photos()
    await seed_previous_release(database_url, stored)
    full = FailingStore(tmp_path / "blobs", room=3)
    full.prepare()
    with pytest.raises(OSError, match="No space left"):
        await migrate.upgrade(database_url, blobs=full)
    state = await database_state(database_url)
    assert state["revision"] == PREVIOUS and "data" in state["blob_columns"]  # the whole revision rolled back
    written = {p.name for p in full.root.glob("??/??/*")}
    assert 0 < len(written) <= 3  # three photos written (two may be the same one) before the volume filled up

    again = FileBlobStore(tmp_path / "blobs")  # room made on the same volume
    before = {name: full.path(name).stat().st_ino for name in written}
    await migrate.upgrade(database_url, blobs=again)
    state = await database_state(database_url)
    assert state["revision"] == migrate.head_revision() and "data" not in state["blob_columns"]
    assert {again.path(name).stat().st_ino for name in written} == set(before.values())  # found in place
    for data in stored.values():
        assert again.path(digest_of(data)).read_bytes() == data


async def test_the_migration_needs_the_blob_store_only_when_there_are_photos(database_url: str, tmp_path: Path) -> None:
    await migrate.upgrade(database_url, PREVIOUS)
    await migrate.upgrade(database_url)  # an empty database: nothing to move, no store needed
    assert (await database_state(database_url))["revision"] == migrate.head_revision()

    other = f"sqlite+aiosqlite:///{tmp_path / 'other.sqlite3'}"
    await seed_previous_release(other, photos())
    with pytest.raises(RuntimeError, match="detectbot migrate"):
        await migrate.upgrade(other)


async def test_going_back_puts_the_bytes_back(database_url: str, tmp_path: Path) -> None:
    stored = photos()
    await seed_previous_release(database_url, stored)
    store = FileBlobStore(tmp_path / "blobs")
    store.prepare()
    await migrate.upgrade(database_url, blobs=store)
    await migrate.downgrade(database_url, PREVIOUS, blobs=store)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(text("SELECT job_id, kind, data FROM blobs"))).all()
        assert {(j, k): hashlib.sha256(bytes(d)).hexdigest() for j, k, d in rows} == {
            key: digest_of(data) for key, data in stored.items()
        }
        assert "digest" not in await columns(engine, "blobs")
    finally:
        await engine.dispose()
