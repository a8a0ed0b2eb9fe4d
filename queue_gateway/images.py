"""Check an upload before anything is stored: magic bytes, allowlist, byte and pixel caps, completeness.

The checks read headers only (a few hundred microseconds for a 100 KB photo): the format from the first bytes,
the size from the header, and whether the file is complete (a JPEG's end-of-image marker after its first scan,
a PNG's IEND chunk, a WebP's RIFF length). A photo that is damaged in the middle is caught by the worker's
decode, which reports it to the person just as clearly ("That image is damaged…").
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from queue_gateway.errors import BadImage
from queue_gateway.public.contract import ErrorCode

FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
_SEGMENTS_WITHOUT_LENGTH = {0x01, *range(0xD0, 0xD8)}  # TEM and RSTn stand alone


@dataclass(frozen=True, slots=True)
class ImageInfo:
    format: str  # "JPEG" | "PNG" | "WEBP"
    content_type: str
    width: int
    height: int
    sha256: str


def sniff(data: bytes) -> str | None:
    """The format named by the file's first bytes, whatever the file name or Content-Type claims."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:2] == b"BM":
        return "BMP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "HEIF"
    return None


def validate(data: bytes, *, max_bytes: int, max_pixels: int) -> ImageInfo:
    """Accept a JPEG/PNG/WebP photo or raise ``BadImage``."""
    if not data:
        raise BadImage(ErrorCode.EMPTY, "The upload was empty. Please send a photo (JPEG, PNG or WebP).", 400)
    if len(data) > max_bytes:
        raise BadImage(
            ErrorCode.TOO_LARGE, f"That file is over {max_bytes // (1024 * 1024)} MB. Please send a smaller photo.", 413
        )
    kind = sniff(data)
    if kind is None:
        raise BadImage(ErrorCode.NOT_AN_IMAGE, "That file is not an image. Please send a JPEG, PNG or WebP photo.", 415)
    if kind not in FORMATS:
        raise BadImage(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"{kind} images are not supported. Please send a JPEG, PNG or WebP photo.",
            415,
        )
    width, height = _header_size(data, kind)
    if width * height > max_pixels:
        raise BadImage(
            ErrorCode.TOO_MANY_PIXELS,
            f"That image is {width}x{height} pixels; the limit is {max_pixels // 1_000_000} megapixels. "
            "Please send a smaller photo.",
            413,
        )
    if not _complete(data, kind):
        raise BadImage(
            ErrorCode.CORRUPT, "That image is damaged or incomplete. Please send it again or try another.", 400
        )
    return ImageInfo(kind, FORMATS[kind], width, height, hashlib.sha256(data).hexdigest())


def _header_size(data: bytes, kind: str) -> tuple[int, int]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[kind]) as image:
                return image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        raise BadImage(
            ErrorCode.CORRUPT, "That image looks damaged. Please send it again or try another.", 400
        ) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImage(
            ErrorCode.TOO_MANY_PIXELS, "That image has far too many pixels. Please send a photo.", 413
        ) from exc


def _complete(data: bytes, kind: str) -> bool:
    """Whether the file holds its whole image (not cut off in transfer)."""
    if kind == "JPEG":
        return jpeg_complete(data)
    if kind == "PNG":
        return data.rfind(b"IEND", 8) > 0
    return int.from_bytes(data[4:8], "little") + 8 <= len(data)  # WebP: the RIFF chunk's length


def jpeg_complete(data: bytes) -> bool:
    """A JPEG's end-of-image marker follows its first scan (walking the header segments by their lengths, so an
    EXIF thumbnail's own markers do not count; bytes after the image, as in motion photos, are fine)."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return False
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _SEGMENTS_WITHOUT_LENGTH:
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker == 0xDA:  # start of scan: entropy-coded data follows, in which 0xFF 0xD9 can only mean the end
            return data.find(b"\xff\xd9", i + 2 + length) >= 0
        i += 2 + length
    return False
