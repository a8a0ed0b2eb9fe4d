"""Photos in the blob store, on the real SQLite and Postgres: one file per photo however many jobs name it, deleted
with the last name and never before; nothing kept for uploads that made no job; a photo stored for a transaction
that failed is swept; and a row never names a missing file, whatever order adders and collectors run in."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from db import jobs, migrate, operations
from db.blobstore import FileBlobStore, digest_of
from db.engine import create_engine, session_factory
from db.models import Blob, BlobFile
from queue_gateway.app import StartupError
from queue_gateway.appkeys import database_key, intake_key, retention_key
from queue_gateway.blob_check import check_blobs
from queue_gateway.database import Database
from queue_gateway.public.contract import DetectParams
from queue_gateway.retention import Retention, Swept
from tests.conftest import eventually
from tests.images import jpeg
from tests.services import OTHER_CLIENT_KEY, GatewayHandle, submit_photo, wait_finished

FIXED = "py:tests.detectors:fixed"


async def names(gateway: GatewayHandle, job_id: str) -> dict[str, str]:
    """kind -> digest of a job's blobs rows."""
    async with gateway.sessions() as session:
        rows = await session.execute(select(Blob.kind, Blob.digest).where(Blob.job_id == job_id))
        return {str(kind): str(digest) for kind, digest in rows}


async def files_known(gateway: GatewayHandle) -> set[str]:
    async with gateway.sessions() as session:
        return {str(digest) for digest in (await session.scalars(select(BlobFile.digest))).all()}


def store_of(gateway: GatewayHandle) -> FileBlobStore:
    store = gateway.app[database_key].blobs
    assert isinstance(store, FileBlobStore)
    return store


def files_in(store: FileBlobStore) -> set[str]:
    return {path.name for path in store.root.glob("??/??/*") if path.is_file()}


# --- through the gateway ----------------------------------------------------------------------------------------


async def test_the_same_photo_from_two_senders_is_one_file_deleted_with_the_last_job(
    start_gateway: Any, database_url: str, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(database_url=database_url)
    store = store_of(gateway)
    photo = jpeg(200, 150)
    other = {"Authorization": f"Bearer {OTHER_CLIENT_KEY}"}
    _, mine = await submit_photo(http, gateway, photo)
    _, theirs = await submit_photo(http, gateway, photo, headers=other)  # another sender: no cache, a job of its own
    digest = digest_of(photo)
    assert await names(gateway, mine["job_id"]) == {"input": digest} == await names(gateway, theirs["job_id"])
    assert files_in(store) == {digest} == await files_known(gateway)
    assert store.path(digest).read_bytes() == photo

    async with http.delete(f"{gateway.url}/v1/jobs/{mine['job_id']}", headers=gateway.headers()) as response:
        assert response.status == 200
    assert await names(gateway, mine["job_id"]) == {}
    assert files_in(store) == {digest}  # the other job still names it
    async with http.delete(f"{gateway.url}/v1/jobs/{theirs['job_id']}", headers=other) as response:
        assert response.status == 200
    assert files_in(store) == set() and await files_known(gateway) == set()  # the last name went: the file too


async def test_a_cached_answer_names_the_earlier_result_which_outlives_the_earlier_job(
    start_gateway: Any, start_worker: Any, database_url: str, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(database_url=database_url)
    await start_worker(gateway, model=FIXED)
    store = store_of(gateway)
    photo = jpeg(160, 120)
    _, first = await submit_photo(http, gateway, photo)
    await wait_finished(http, gateway, first["job_id"])
    async with http.get(first["result_url"]) as response:
        annotated = await response.read()
    _, again = await submit_photo(http, gateway, photo)
    assert again["status"] == "done"  # from the cache
    assert await names(gateway, again["job_id"]) == await names(gateway, first["job_id"])  # the same two files
    assert files_in(store) == {digest_of(photo), digest_of(annotated)}

    async with http.delete(f"{gateway.url}/v1/jobs/{first['job_id']}", headers=gateway.headers()) as response:
        assert response.status == 200
    async with http.get(again["result_url"]) as response:
        assert (response.status, await response.read()) == (200, annotated)
    async with http.get(first["result_url"]) as response:
        assert response.status == 410


async def test_uploads_that_made_no_job_leave_no_file(
    start_gateway: Any, database_url: str, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(database_url=database_url, max_inflight_per_key=1)
    store = store_of(gateway)
    kept = jpeg(100, 80)
    _, job = await submit_photo(http, gateway, kept, headers={"Idempotency-Key": "one"})
    repeat = jpeg(101, 80)  # the same key again with another photo: answered with the first job
    status, body = await submit_photo(http, gateway, repeat, headers={"Idempotency-Key": "one"})
    assert (status, body["job_id"]) == (200, job["job_id"])
    refused = jpeg(102, 80)  # over the key's one photo in line
    status, _ = await submit_photo(http, gateway, refused)
    assert status == 429
    assert files_in(store) == {digest_of(kept)}  # the answers came after the other two files were gone


async def test_a_second_result_for_a_job_leaves_no_file(gateway: GatewayHandle, http: aiohttp.ClientSession) -> None:
    photo = jpeg(120, 90)
    _, job = await submit_photo(http, gateway, photo)
    links = gateway.app[intake_key]._publisher.message_for(job["job_id"], DetectParams())
    async with http.get(f"{gateway.url}{links.input_url}", headers={"X-Detectbot-Worker": "w"}) as response:
        assert (response.status, await response.read()) == (200, photo)  # streamed from the store
    results = [jpeg(64, 48), jpeg(64, 48)]  # a worker that answered twice (a retried upload), differently
    for n, result in enumerate(results):
        form = aiohttp.FormData()
        meta = {"ok": True, "worker": "w", "model": "m", "inference_ms": 1.0, "detections": []}
        form.add_field("meta", json.dumps(meta), content_type="application/json")
        form.add_field("image", result, filename="r.jpg", content_type="image/jpeg")
        async with http.post(f"{gateway.url}{links.result_url}", data=form) as response:
            assert (await response.json())["outcome"] == ("applied" if n == 0 else "repeated")
    assert files_in(store_of(gateway)) == {digest_of(photo), digest_of(results[0])}


# --- the ordering, on the database itself -----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def database(url: str, store: FileBlobStore) -> AsyncIterator[Database]:
    """A Database of its own (its own engine and connections), as another gateway replica would have."""
    engine = create_engine(url)
    try:
        yield Database(session_factory(engine), store, retry_s=10.0)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def migrated(url: str, tmp_path: Path) -> AsyncIterator[tuple[Database, FileBlobStore]]:
    store = FileBlobStore(tmp_path / "blobs")
    store.prepare()
    await migrate.upgrade(url, blobs=store)
    async with database(url, store) as db:
        yield db, store


def new_job(photo: bytes, digest: str = "") -> jobs.NewJob:
    return jobs.NewJob(
        id=uuid.uuid4().hex, platform="http", image=photo, image_sha256=digest_of(photo), image_format="JPEG",
        content_type="image/jpeg", width=1, height=1, digest=digest,
    )  # fmt: skip


async def add(db: Database, photo: bytes) -> str:
    """What intake does: put the photo, then record a job that names it."""
    job = new_job(photo, await db.blobs.put(photo))
    await db.write(lambda session: jobs.add_jobs(session, db.blobs, [job]))
    return job.id


async def rows_without_files(db: Database) -> list[str]:
    async with db.sessions() as session:
        named = (await session.scalars(select(Blob.digest))).all()
    return sorted(await db.blobs.missing(set(named)))


async def test_a_photo_stored_for_a_transaction_that_failed_is_swept_after_the_grace_period(
    database_url: str, tmp_path: Path
) -> None:
    async with migrated(database_url, tmp_path) as (db, store):
        kept = await add(db, b"a photo with a job")
        orphan = b"a photo whose job was never recorded"
        job = new_job(orphan, await store.put(orphan))

        async def crash(session: AsyncSession) -> None:
            await jobs.add_jobs(session, store, [job])
            raise RuntimeError("the gateway died before its commit")

        with contextlib.suppress(RuntimeError):
            await db.write(crash)
        async with db.sessions() as session:
            assert await session.get(Blob, (job.id, "input")) is None  # rolled back
        assert await store.exists(digest_of(orphan))

        retention = Retention(db, days=7, every_s=3600, grace_s=600)
        assert (await retention.sweep_once()).files == 0  # within the grace period: it may still get its row
        long_ago = time.time() - 3600
        for digest in (digest_of(orphan), digest_of(b"a photo with a job")):
            os.utime(store.path(digest), (long_ago, long_ago))
        async with db.sessions.begin() as session:  # a lock row nothing names (a commit that failed after a collect)
            session.add(BlobFile(digest=digest_of(b"gone"), touched_at=long_ago))
        assert await retention.sweep_once() == Swept(files=1, records=1, partial=0)
        assert await store.missing([digest_of(orphan)]) == {digest_of(orphan)}
        assert await rows_without_files(db) == []  # the named one, as old, stays
        async with db.sessions() as session:
            assert set((await session.scalars(select(BlobFile.digest))).all()) == {digest_of(b"a photo with a job")}
            assert await session.get(Blob, (kept, "input")) is not None


async def test_a_collector_waits_for_an_adder_that_has_checked_the_file(database_url: str, tmp_path: Path) -> None:
    """The dangerous order: an adder has checked the file is there and not committed yet, when a collector decides
    the file is unnamed. The collector must wait for the adder's commit, and then keep the file."""
    photo = b"a photo sent again while its first job is being forgotten"
    engine = create_engine(database_url)  # the collector's, as another replica's
    async with migrated(database_url, tmp_path) as (adder, store):
        collector = Database(session_factory(engine), store, retry_s=10.0)
        first = await add(adder, photo)
        async with adder.sessions.begin() as session:  # the first job is forgotten; its file is not collected yet
            await operations.forget_jobs(session, [first], reason="test")
        digest = digest_of(photo)
        job = new_job(photo, await store.put(photo))
        checked, commit = asyncio.Event(), asyncio.Event()

        async def add_then_wait(session: AsyncSession) -> None:
            await jobs.add_jobs(session, store, [job])  # locks the file's row, finds the file
            checked.set()
            await commit.wait()

        adding = asyncio.create_task(adder.write(add_then_wait))
        await checked.wait()
        issued = asyncio.Event()
        event.listen(engine.sync_engine, "before_cursor_execute", _on_lock(issued))
        try:
            collecting = asyncio.create_task(collector.collect({digest}))
            await issued.wait()  # the collector has asked for the file's lock
            await _waits_for_a_lock(adder, database_url)
            assert not collecting.done()
            commit.set()
            await adding
            assert await collecting == 0
        finally:
            await engine.dispose()
        assert await store.exists(digest)
        assert await rows_without_files(adder) == []


def _on_lock(issued: asyncio.Event) -> Any:
    loop = asyncio.get_running_loop()

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO BLOB_FILES"):
            loop.call_soon_threadsafe(issued.set)

    return seen


async def _waits_for_a_lock(db: Database, url: str) -> None:
    """On Postgres, until the collector's statement waits on a lock (SQLite's writers wait in its busy handler,
    which nothing outside shows)."""
    if not url.startswith("postgresql"):
        return

    async def waiting() -> bool:
        async with db.sessions() as session:
            query = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            return bool(await session.scalar(query))

    await eventually(waiting, timeout=10, what="the collector to wait for the adder's lock")


async def test_adders_and_collectors_at_once_never_leave_a_row_without_its_file(
    database_url: str, tmp_path: Path
) -> None:
    """Three replicas at once, round after round, on one photo: one sends it again, one forgets the job before,
    one sweeps; after every round each row's file is there, and the file goes once no row names it."""
    photo = b"the same photo, over and over"
    digest = digest_of(photo)
    async with (
        migrated(database_url, tmp_path) as (one, store),
        database(database_url, store) as two,
        database(database_url, store) as three,
    ):
        previous = await add(one, photo)
        for _ in range(25):
            forget = two.write(lambda s, job=previous: operations.forget_jobs(s, [job], reason="test"))
            added, _, _ = await asyncio.gather(add(one, photo), forget, three.collect({digest}))
            assert await rows_without_files(one) == []
            previous = added
        await two.write(lambda s: operations.forget_jobs(s, [previous], reason="test"))
        assert not await store.exists(digest)
        async with one.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(BlobFile)) == 0


async def test_retention_deletes_old_photos_and_their_files(
    gateway: GatewayHandle, http: aiohttp.ClientSession
) -> None:
    store = store_of(gateway)
    _, old = await submit_photo(http, gateway, jpeg(90, 90))
    async with gateway.sessions.begin() as session:
        await session.execute(text("UPDATE jobs SET status = 'failed', received_at = received_at - 8 * 86400"))
    assert await gateway.app[retention_key].purge_once() == 1
    assert files_in(store) == set()
    assert await names(gateway, old["job_id"]) == {}


async def test_blobs_check_finds_rows_without_files_and_repairs_them_but_not_a_wrong_directory(
    start_gateway: Any, database_url: str, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    gateway = await start_gateway(database_url=database_url)
    store = store_of(gateway)
    _, kept = await submit_photo(http, gateway, jpeg(80, 60))
    _, lost = await submit_photo(http, gateway, jpeg(81, 60))
    missing = (await names(gateway, lost["job_id"]))["input"]
    store.path(missing).unlink()  # as a restore finds it when the photo was deleted while the backup ran

    checked = await check_blobs(gateway.settings, repair=False)
    assert (checked.rows, checked.jobs, checked.lost, checked.repaired) == (2, 2, [lost["job_id"]], False)
    checked = await check_blobs(gateway.settings, repair=True)
    assert checked.repaired and await names(gateway, lost["job_id"]) == {}
    assert (await check_blobs(gateway.settings, repair=False)).lost == []
    async with http.get(lost["result_url"]) as response:
        assert response.status == 410
    assert (await names(gateway, kept["job_id"]))["input"] in files_in(store)  # the other job keeps its photo
    assert missing not in await files_known(gateway)

    wrong = gateway.settings.model_copy(update={"blob_dir": tmp_path / "not-mounted"})
    with pytest.raises(StartupError, match="does not exist"):
        await check_blobs(wrong, repair=True)
    (tmp_path / "empty").mkdir()
    empty = gateway.settings.model_copy(update={"blob_dir": tmp_path / "empty"})
    with pytest.raises(StartupError, match="Nothing was repaired"):
        await check_blobs(empty, repair=True)
    assert await names(gateway, kept["job_id"]) != {}


async def test_a_replica_that_does_not_see_the_blob_store_answers_503_not_gone(
    start_gateway: Any, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """A volume not shared (or not mounted) on one replica: its worker links answer "try again", so the job waits
    for a replica that sees the file instead of being dropped as finished."""
    one = await start_gateway()
    other = await start_gateway(database_url=one.settings.database_url, blob_dir=tmp_path / "another-volume")
    photo = jpeg(70, 50)
    _, job = await submit_photo(http, one, photo)
    links = one.app[intake_key]._publisher.message_for(job["job_id"], DetectParams())
    worker = {"X-Detectbot-Worker": "w", "X-Detectbot-Delivery": "1"}
    async with http.get(f"{other.url}{links.input_url}", headers=worker) as response:
        assert response.status == 503 and response.headers["Retry-After"] == "5"
    async with http.get(f"{one.url}{links.input_url}", headers=worker) as response:
        assert (response.status, await response.read()) == (200, photo)
