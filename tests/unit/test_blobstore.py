"""The file blob store on a real directory: names, atomic writes, streaming, listing, deletion."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from db.blobstore import CHUNK_BYTES, BlobMissing, FileBlobStore, Put


@pytest.fixture
def store(tmp_path: Path) -> FileBlobStore:
    store = FileBlobStore(tmp_path / "blobs")
    store.prepare()
    return store


async def test_a_blob_is_named_by_its_sha256_in_shard_directories(store: FileBlobStore) -> None:
    data = b"\xff\xd8 a photo"
    digest = await store.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    path = store.root / digest[:2] / digest[2:4] / digest
    assert path.read_bytes() == data
    assert await store.get(digest) == data
    assert await store.exists(digest)
    assert list((store.root / "tmp").iterdir()) == []  # nothing left of the write
    assert oct(path.stat().st_mode & 0o777) == "0o600"


async def test_the_same_bytes_twice_are_one_file_made_fresh_again(store: FileBlobStore) -> None:
    digest = await store.put(b"same")
    path = store.path(digest)
    long_ago = time.time() - 7200
    os.utime(path, (long_ago, long_ago))
    assert await store.older_than(time.time() - 3600) == [digest]
    assert await store.put(b"same") == digest
    assert await store.older_than(time.time() - 3600) == []  # stored again: young again
    assert sum(1 for p in store.root.rglob("*") if p.is_file()) == 1


async def test_storing_says_whether_the_bytes_were_there_already(store: FileBlobStore) -> None:
    first = await store.store(b"a photo")
    assert not first.existed
    assert await store.store(b"a photo") == Put(first.digest, existed=True)
    await store.delete([first.digest])
    assert not (await store.store(b"a photo")).existed  # deleted since: new again


async def test_a_stream_reads_every_chunk_of_a_large_blob(store: FileBlobStore) -> None:
    data = os.urandom(CHUNK_BYTES * 2 + 1234)
    digest = await store.put(data)
    async with store.open(digest) as blob:
        assert blob.size == len(data)
        chunks = [chunk async for chunk in blob]
    assert len(chunks) == 3 and b"".join(chunks) == data


async def test_a_missing_blob_says_so_before_anything_is_read(store: FileBlobStore) -> None:
    digest = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(BlobMissing):
        await store.get(digest)
    with pytest.raises(BlobMissing):
        async with store.open(digest):
            pass
    assert not await store.exists(digest)
    kept = await store.put(b"kept")
    assert await store.missing([digest, kept]) == {digest}


async def test_delete_removes_only_what_it_names(store: FileBlobStore) -> None:
    one, two = await store.put(b"one"), await store.put(b"two")
    absent = hashlib.sha256(b"absent").hexdigest()
    assert await store.delete([one, absent]) == 1
    assert await store.missing([one, two]) == {one}


@pytest.mark.parametrize("name", ["../../etc/passwd", "ab", "A" * 64, "g" * 64, ""])
async def test_only_a_sha256_becomes_a_path(store: FileBlobStore, name: str) -> None:
    with pytest.raises(ValueError, match="not a blob digest"):
        await store.get(name)


async def test_an_interrupted_write_leaves_no_final_name_and_is_cleaned_later(store: FileBlobStore) -> None:
    """A process killed mid-write leaves only its temporary file (what put writes before the rename)."""
    data = b"half a photo"
    digest = hashlib.sha256(data).hexdigest()
    part = store.root / "tmp" / f"{digest}.0123.part"
    part.write_bytes(data[:4])
    assert await store.missing([digest]) == {digest}
    assert await store.older_than(time.time() + 60) == []  # never taken for a blob
    assert await store.clean(time.time() - 3600) == 0  # too young: it may still be written
    long_ago = time.time() - 7200
    os.utime(part, (long_ago, long_ago))
    assert await store.clean(time.time() - 3600) == 1
    assert not part.exists()
    assert await store.put(data) == digest and await store.get(digest) == data


def test_a_directory_that_cannot_be_written_is_refused(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")
    with pytest.raises(OSError):
        FileBlobStore(blocked / "blobs").prepare()
