"""Images in and out of the blob store over HTTP: stored before the row that names them, streamed when asked for."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable

from aiohttp import web

from db import blobs
from db.blobstore import BlobMissing, BlobStore, StoredBlob
from queue_gateway.database import Database
from queue_gateway.errors import GatewayError, Unavailable

log = logging.getLogger(__name__)

RECENT_BYTES = 32 * 1024 * 1024  # about 190 annotated 1280x960 photos
RECENT_ONE_BYTES = 2 * 1024 * 1024  # larger results (clips, 12 MP photos) are read from the store


class RecentResults:
    """The results this replica took from workers and has not delivered yet, in memory: the delivery that follows
    reads the image from here, not the database and the blob store. Only what a delivery may send is kept (the
    result that was recorded, by the digest its row names); one taken is gone, so a retried delivery, or one made
    by another replica, reads the store as before. Deleted photos (``/forget``, ``DELETE``) clear it."""

    def __init__(self, max_bytes: int = RECENT_BYTES, max_one: int = RECENT_ONE_BYTES) -> None:
        self._kept: OrderedDict[str, StoredBlob] = OrderedDict()
        self._bytes = 0
        self._max_bytes = max_bytes
        self._max_one = max_one

    def keep(self, job_id: str, blob: StoredBlob) -> None:
        if len(blob.data) > self._max_one:
            return
        self._drop(job_id)
        self._kept[job_id] = blob
        self._bytes += len(blob.data)
        while self._bytes > self._max_bytes:
            _, oldest = self._kept.popitem(last=False)
            self._bytes -= len(oldest.data)

    def take(self, job_ids: Iterable[str]) -> dict[str, StoredBlob]:
        """The results kept for these jobs, each given up (those not kept are absent)."""
        found = {}
        for job_id in job_ids:
            if (blob := self._kept.pop(job_id, None)) is not None:
                self._bytes -= len(blob.data)
                found[job_id] = blob
        return found

    def clear(self) -> None:
        self._kept.clear()
        self._bytes = 0

    def _drop(self, job_id: str) -> None:
        if (blob := self._kept.pop(job_id, None)) is not None:
            self._bytes -= len(blob.data)


async def store_blob(store: BlobStore, data: bytes, content_type: str) -> StoredBlob:
    """Put ``data`` in the blob store (written and synced); 503 when the store cannot take it now."""
    try:
        digest = await store.put(data)
    except OSError as exc:
        log.error("the blob store refused an image of %d bytes (%s)", len(data), exc.strerror or type(exc).__name__)
        raise Unavailable(retry_after=5) from None
    return StoredBlob(digest, data, content_type)


async def send_blob(
    request: web.Request,
    database: Database,
    digest: str,
    content_type: str,
    *,
    gone: GatewayError,
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    """Stream the blob ``digest`` as the answer; ``gone`` when it was deleted since its row was read (a /forget or
    retention in between). A file missing while a row still names it means this replica does not see the blob
    store the others write (a volume not shared, or not mounted): 503, so that a worker tries again later."""
    try:
        async with database.blobs.open(digest) as blob:
            response = web.StreamResponse(headers=headers)
            response.content_type = content_type
            response.content_length = blob.size
            await response.prepare(request)
            async for chunk in blob:
                await response.write(chunk)
            await response.write_eof()
            return response
    except BlobMissing:
        raise await _missing(database, digest, gone) from None


async def read_blob(database: Database, digest: str, *, gone: GatewayError) -> bytes:
    """The bytes of the blob ``digest``, for the gateway's own use (cutting objects out, running a photo again);
    ``gone`` or 503 as :func:`send_blob` says."""
    try:
        return await database.blobs.get(digest)
    except BlobMissing:
        raise await _missing(database, digest, gone) from None


async def _missing(database: Database, digest: str, gone: GatewayError) -> GatewayError:
    if await database.read(lambda session: blobs.is_named(session, digest)):
        log.error(
            "the blob store has no file %s, which the database names: does every gateway replica mount the same "
            "DETECTBOT_BLOB_DIR?", digest,
        )  # fmt: skip
        return Unavailable(retry_after=5)
    return gone
