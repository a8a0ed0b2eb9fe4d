"""Request bodies read with byte caps enforced while reading, so an oversized upload is never held whole."""

from __future__ import annotations

from aiohttp import BodyPartReader, web

from queue_gateway.errors import ApiError

CHUNK = 256 * 1024


def is_multipart(request: web.Request) -> bool:
    """A plain header check: aiohttp's ``content_type`` goes through the e-mail parser, slow on a hot path."""
    return request.headers.get("Content-Type", "").lower().startswith("multipart/")


def too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"That file is over {limit // (1024 * 1024)} MB. Please send a smaller photo.")


async def read_form(request: web.Request, caps: dict[str, int]) -> dict[str, bytes]:
    """The named multipart fields (each within its cap); any other field is skipped."""
    reader = await request.multipart()
    fields: dict[str, bytes] = {}
    while (part := await reader.next()) is not None:
        if isinstance(part, BodyPartReader) and part.name in caps:
            fields[part.name] = await _read_part(part, caps[part.name])
        elif isinstance(part, BodyPartReader):
            await part.release()
    return fields


async def read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(CHUNK):
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_part(part: BodyPartReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(CHUNK):
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)
