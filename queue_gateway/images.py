"""Check an upload before anything is stored: magic bytes, allowlist, byte and pixel caps, a full decode."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


@dataclass(frozen=True, slots=True)
class ImageInfo:
    format: str  # "JPEG" | "PNG" | "WEBP"
    content_type: str
    width: int
    height: int
    sha256: str


class ImageRejected(Exception):
    """An upload we will not take; ``code`` is stable, ``message`` is for a person."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


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
    """Accept a JPEG/PNG/WebP photo or raise ``ImageRejected``. CPU-bound: call it from an executor."""
    if not data:
        raise ImageRejected("empty", "The upload was empty. Please send a photo (JPEG, PNG or WebP).", 400)
    if len(data) > max_bytes:
        raise ImageRejected(
            "too_large",
            f"That file is over {max_bytes // (1024 * 1024)} MB. Please send a smaller photo.",
            413,
        )
    kind = sniff(data)
    if kind is None:
        raise ImageRejected("not_an_image", "That file is not an image. Please send a JPEG, PNG or WebP photo.", 415)
    if kind not in FORMATS:
        raise ImageRejected(
            "unsupported_format",
            f"{kind} images are not supported. Please send a JPEG, PNG or WebP photo.",
            415,
        )
    width, height = _header_size(data, kind)
    if width * height > max_pixels:
        raise ImageRejected(
            "too_many_pixels",
            f"That image is {width}x{height} pixels; the limit is {max_pixels // 1_000_000} megapixels. "
            "Please send a smaller photo.",
            413,
        )
    _decode_fully(data)
    return ImageInfo(kind, FORMATS[kind], width, height, hashlib.sha256(data).hexdigest())


def _header_size(data: bytes, kind: str) -> tuple[int, int]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[kind]) as image:
                return image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected("corrupt", "That image looks damaged. Please send it again or try another.", 400) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("too_many_pixels", "That image has far too many pixels. Please send a photo.", 413) from exc


def _decode_fully(data: bytes) -> None:
    """Decode every pixel once, so a truncated or corrupt file is refused now, not in a worker."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format == "JPEG":
                    image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
                image.load()
    except (
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise ImageRejected(
            "corrupt", "That image is damaged or incomplete. Please send it again or try another.", 400
        ) from exc
