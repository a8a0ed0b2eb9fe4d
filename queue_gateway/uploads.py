"""Request bodies read with byte caps enforced while reading, so an oversized upload is never held whole.

A malformed body (no boundary, broken part headers, a cut-off part) is a 400 with a sentence, never a 500.
"""

from __future__ import annotations

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from queue_gateway.errors import BadImage, BadRequest
from queue_gateway.public.contract import ErrorCode

CHUNK = 256 * 1024
_MALFORMED = (ValueError, KeyError, LookupError, AssertionError, HttpProcessingError, UnicodeError, EOFError)


def is_multipart(request: web.Request) -> bool:
    """A plain header check: aiohttp's ``content_type`` goes through the e-mail parser, slow on a hot path."""
    return request.headers.get("Content-Type", "").lower().startswith("multipart/")


def too_large(limit: int) -> BadImage:
    return BadImage(
        ErrorCode.TOO_LARGE, f"That file is over {limit // (1024 * 1024)} MB. Please send a smaller photo.", 413
    )


async def read_form(request: web.Request, caps: dict[str, int]) -> dict[str, bytes]:
    """The named multipart fields (each within its cap); any other field is skipped."""
    try:
        reader = await request.multipart()
        fields: dict[str, bytes] = {}
        while (part := await reader.next()) is not None:
            if isinstance(part, BodyPartReader) and part.name in caps and part.name not in fields:
                fields[part.name] = await _read_part(part, caps[part.name])
            elif isinstance(part, BodyPartReader):
                await part.release()
            else:  # a nested multipart: not something we ask for
                raise BadRequest("Nested multipart bodies are not supported.", code=ErrorCode.BAD_MULTIPART)
    except _MALFORMED as exc:
        raise BadRequest(f"The multipart body could not be read ({_why(exc)}).", code=ErrorCode.BAD_MULTIPART) from None
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


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:120]
