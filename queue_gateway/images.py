"""Check an upload before anything is stored: magic bytes, allowlist, byte and pixel caps, completeness, and the
work its decoding would cost.

The checks read the file's structure only (``queue_gateway.public.imagecheck``: markers and chunks found in C,
a bounded number of Python steps whatever the file holds), never decode it: the format from the first bytes, the
size from the header, whether the file is complete, and whether a decoder would spend out of proportion to its
size (a scan bomb, a flood of segments). A photo damaged in the middle is caught by the worker's decode, which
reports it to the person just as clearly ("That image is damaged…").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from queue_gateway.errors import BadImage
from queue_gateway.public.contract import ErrorCode
from queue_gateway.public.imagecheck import ImageProblem, inspect, sniff

FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
__all__ = ["FORMATS", "ImageInfo", "sniff", "validate"]


@dataclass(frozen=True, slots=True)
class ImageInfo:
    format: str  # "JPEG" | "PNG" | "WEBP"
    content_type: str
    width: int
    height: int
    sha256: str


def validate(data: bytes, *, max_bytes: int, max_pixels: int) -> ImageInfo:
    """Accept a JPEG/PNG/WebP photo or raise ``BadImage``."""
    if not data:
        raise BadImage(ErrorCode.EMPTY, "The upload was empty. Please send a photo (JPEG, PNG or WebP).", 400)
    if len(data) > max_bytes:
        raise BadImage(
            ErrorCode.TOO_LARGE, f"That file is over {max_bytes // (1024 * 1024)} MB. Please send a smaller photo.", 413
        )
    try:
        found = inspect(data, max_pixels=max_pixels)
    except ImageProblem as problem:
        raise refusal(problem, max_pixels) from None
    return ImageInfo(found.format, FORMATS[found.format], found.width, found.height, hashlib.sha256(data).hexdigest())


def refusal(problem: ImageProblem, max_pixels: int) -> BadImage:
    """The answer for a file the structure check refused: a stable code, a status, and a sentence."""
    detail = str(problem)
    if problem.code == ErrorCode.NOT_AN_IMAGE:
        return BadImage(
            ErrorCode.NOT_AN_IMAGE, "That file is not an image. Please send a JPEG, PNG or WebP photo.", 415
        )
    if problem.code == ErrorCode.UNSUPPORTED_FORMAT:
        return BadImage(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"That image is not supported ({detail}). Please send a JPEG, PNG or WebP photo.",
            415,
        )
    if problem.code == ErrorCode.TOO_MANY_PIXELS:
        return BadImage(
            ErrorCode.TOO_MANY_PIXELS,
            f"That image has {detail}; the limit is {max_pixels // 1_000_000} megapixels. Please send a smaller photo.",
            413,
        )
    if problem.code == ErrorCode.TOO_COMPLEX:
        return BadImage(
            ErrorCode.TOO_COMPLEX,
            f"That image is built to be very slow to decode ({detail}). Please send an ordinary photo.",
            422,
        )
    return BadImage(
        ErrorCode.CORRUPT, f"That image is damaged or incomplete ({detail}). Please send it again or try another.", 400
    )
