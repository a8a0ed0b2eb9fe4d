"""The blob store: photos and annotated results, kept beside the database as files named by their content.

A blob's name is the sha256 of its bytes (its *digest*), so the same photo sent twice is one file, and a name never
points at other bytes than it did. :class:`BlobStore` is what the rest of the code needs of a place for blobs; an
S3-compatible store can implement it (keys named by digest, PutObject is atomic, ListObjectsV2 gives
LastModified). :class:`FileBlobStore` keeps them in a directory (a volume that gateway replicas share), sharded
``ab/cd/abcdef…``.

Writes are atomic: the bytes go to a temporary file in the store's ``tmp/`` directory, are synced to disk, and the
file is renamed to its final name (and the directory synced), so a crash never leaves a half file under a final
name. All file I/O runs in threads (``asyncio.to_thread``), never on the event loop: a put syncs to disk (a
fraction of a millisecond to several on a network volume) and inputs reach 20 MB.

The store knows nothing of jobs: which rows name which digest, and when a file may go, is :mod:`db.blobs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

DIGEST = re.compile(r"[0-9a-f]{64}")
CHUNK_BYTES = 256 * 1024  # what a stream reads at a time


class BlobMissing(LookupError):
    """No blob has this digest (never stored, or deleted since)."""


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    """``digest`` if it is a sha256 in lower-case hex; anything else never becomes a path."""
    if not DIGEST.fullmatch(digest):
        raise ValueError(f"not a blob digest: {digest[:80]!r}")
    return digest


@dataclass(frozen=True, slots=True)
class Put:
    """What :meth:`BlobStore.store` did: the digest, and whether the same bytes were in the store already."""

    digest: str
    existed: bool


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """Bytes already in the store, with the digest it named them by (and their type, for the row that names them)."""

    digest: str
    data: bytes
    content_type: str


class BlobReader(ABC):
    """An open blob: its size, then its bytes in chunks (``async for chunk in reader``)."""

    size: int

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[bytes]: ...


class BlobStore(ABC):
    """A place for blobs, named by digest. Every method may be called from many tasks and processes at once."""

    @abstractmethod
    async def put(self, data: bytes) -> str:
        """Store ``data`` durably (on disk before this returns) and return its digest; storing bytes that are
        already there only marks them as fresh (the sweep of unnamed blobs counts their age from then)."""

    async def store(self, data: bytes) -> Put:
        """:meth:`put`, telling whether these bytes were there already (never stored, or deleted since: not). A
        store that cannot tell says they were, which costs its callers only a look for earlier uses of them."""
        return Put(await self.put(data), existed=True)

    @abstractmethod
    async def get(self, digest: str) -> bytes:
        """The bytes of a blob; :class:`BlobMissing` when there is none."""

    @abstractmethod
    def open(self, digest: str) -> contextlib.AbstractAsyncContextManager[BlobReader]:
        """``async with store.open(digest) as blob``: stream a blob without holding all of it; entering raises
        :class:`BlobMissing` when there is none, so that a caller learns it before it starts answering."""

    @abstractmethod
    async def exists(self, digest: str) -> bool: ...

    @abstractmethod
    async def missing(self, digests: Collection[str]) -> set[str]:
        """Which of these digests have no blob (one round trip for many)."""

    @abstractmethod
    async def delete(self, digests: Collection[str]) -> int:
        """Delete these blobs (those already gone are skipped); return how many were deleted."""

    @abstractmethod
    async def older_than(self, cutoff: float) -> list[str]:
        """The digests of the blobs last stored before ``cutoff`` (epoch seconds), for the sweep of unnamed ones."""

    @abstractmethod
    async def clean(self, cutoff: float) -> int:
        """Remove what interrupted writes left behind before ``cutoff``; return how many."""

    # blocking forms, for code that runs outside the event loop (the migration that moves blobs out of the database)

    @abstractmethod
    def put_blocking(self, data: bytes) -> str: ...

    @abstractmethod
    def get_blocking(self, digest: str) -> bytes: ...


class FileBlobStore(BlobStore):
    """Blobs as files under ``root``: ``root/ab/cd/abcdef…`` for the digest ``abcdef…``; ``root/tmp`` holds writes
    in progress (on the same file system, so that the rename into place is atomic)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"

    def prepare(self) -> None:
        """Create the directory (blocking; once, at start); raise ``OSError`` when it cannot be written."""
        self._tmp.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not os.access(self.root, os.W_OK | os.X_OK) or not os.access(self._tmp, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "not writable", str(self.root))

    def path(self, digest: str) -> Path:
        check_digest(digest)
        return self.root / digest[:2] / digest[2:4] / digest

    # --- the interface ---------------------------------------------------------------------------------------

    async def put(self, data: bytes) -> str:
        return (await asyncio.to_thread(self._put, data)).digest

    async def store(self, data: bytes) -> Put:
        return await asyncio.to_thread(self._put, data)

    async def get(self, digest: str) -> bytes:
        return await asyncio.to_thread(self.get_blocking, digest)

    @contextlib.asynccontextmanager
    async def open(self, digest: str) -> AsyncIterator[BlobReader]:
        path = self.path(digest)
        try:
            size, first = await asyncio.to_thread(_read_range, path, 0)
        except FileNotFoundError:
            raise BlobMissing(digest) from None
        yield _FileReader(path, size, first)

    async def exists(self, digest: str) -> bool:
        return await asyncio.to_thread(self.path(digest).is_file)

    async def missing(self, digests: Collection[str]) -> set[str]:
        if not digests:
            return set()
        return await asyncio.to_thread(lambda: {d for d in digests if not self.path(d).is_file()})

    async def delete(self, digests: Collection[str]) -> int:
        if not digests:
            return 0
        return await asyncio.to_thread(self._delete, list(digests))

    async def older_than(self, cutoff: float) -> list[str]:
        return await asyncio.to_thread(self._older_than, cutoff)

    async def clean(self, cutoff: float) -> int:
        return await asyncio.to_thread(self._clean, cutoff)

    def put_blocking(self, data: bytes) -> str:
        return self._put(data).digest

    def _put(self, data: bytes) -> Put:
        digest = digest_of(data)
        final = self.path(digest)
        try:
            os.utime(final)  # there already (the same photo again): fresh as of now
            return Put(digest, existed=True)
        except FileNotFoundError:
            pass
        self._make_dirs(final.parent)
        tmp = self._tmp / f"{digest}.{uuid.uuid4().hex}.part"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)  # atomic: the final name has all the bytes or does not exist
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        _sync_dir(final.parent)  # the rename itself survives a power cut
        return Put(digest, existed=False)

    def get_blocking(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise BlobMissing(digest) from None

    # --- blocking helpers ------------------------------------------------------------------------------------

    def _make_dirs(self, directory: Path) -> None:
        """Create the shard directories that are missing, each made durable in its parent."""
        if directory.is_dir():
            return
        self._make_dirs(directory.parent)
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            return  # another writer made it a moment ago
        _sync_dir(directory.parent)

    def _delete(self, digests: Iterable[str]) -> int:
        deleted = 0
        touched: set[Path] = set()
        for digest in digests:
            path = self.path(digest)
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            deleted += 1
            touched.add(path.parent)
        for directory in touched:
            _sync_dir(directory)
        return deleted

    def _older_than(self, cutoff: float) -> list[str]:
        found = []
        for first in _subdirs(self.root, 2):
            for second in _subdirs(first, 2):
                with os.scandir(second) as entries:
                    for entry in entries:
                        if DIGEST.fullmatch(entry.name) and entry.is_file() and entry.stat().st_mtime < cutoff:
                            found.append(entry.name)
        return found

    def _clean(self, cutoff: float) -> int:
        removed = 0
        with os.scandir(self._tmp) as entries:
            for entry in entries:
                if entry.name.endswith(".part") and entry.stat().st_mtime < cutoff:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        removed += 1
        return removed


class _FileReader(BlobReader):
    """Reads chunk by chunk, each in a thread that opens and closes the file: no file stays open across awaits
    (a caller that goes away leaves nothing open), and a file's bytes never change under its name."""

    def __init__(self, path: Path, size: int, first: bytes) -> None:
        self._path = path
        self.size = size
        self._first = first

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunk, offset = self._first, len(self._first)
        while chunk:
            yield chunk
            if offset >= self.size:
                return
            _, chunk = await asyncio.to_thread(_read_range, self._path, offset)
            offset += len(chunk)


def _read_range(path: Path, offset: int) -> tuple[int, bytes]:
    """The file's size, and up to ``CHUNK_BYTES`` of it from ``offset``."""
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        handle.seek(offset)
        return size, handle.read(CHUNK_BYTES)


def _subdirs(directory: Path, width: int) -> list[Path]:
    """The shard directories in ``directory`` (two hex characters each)."""
    with os.scandir(directory) as entries:
        return [Path(e.path) for e in entries if len(e.name) == width and e.is_dir() and _is_hex(e.name)]


def _is_hex(name: str) -> bool:
    return all(c in "0123456789abcdef" for c in name)


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
