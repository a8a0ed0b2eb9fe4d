"""Check an upload before anything is stored: magic bytes, allowlist, byte and pixel caps, completeness, and the
work its decoding would cost; a GIF or short clip against the clip limits (length, bytes, pixels a frame).

The checks read the file's structure only (``queue_gateway.public.imagecheck``: markers and chunks found in C,
a bounded number of Python steps whatever the file holds), never decode it: the format from the first bytes, the
size from the header, whether the file is complete, and whether a decoder would spend out of proportion to its
size (a scan bomb, a flood of segments). A photo damaged in the middle is caught by the worker's decode, which
reports it to the person just as clearly ("That image is damaged…").

A clip (GIF, MP4/MOV H.264, WebM VP8/VP9, by its magic bytes) goes through the shared bounded probe
(``queue_gateway.public.clipprobe``): the headers, then its packets demuxed without decoding, so that a clip too
long, too large or of too many pixels is refused at once, with the limit in the sentence, and nothing stored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from queue_gateway.errors import BadImage
from queue_gateway.public import clips, texts
from queue_gateway.public.clips import ClipLimits, ClipProblem
from queue_gateway.public.contract import ErrorCode
from queue_gateway.public.imagecheck import ImageProblem, inspect, sniff

FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
__all__ = ["FORMATS", "ImageInfo", "check_upload", "is_clip", "sniff", "validate", "validate_clip"]

CLIP_STATUSES = {
    ErrorCode.EMPTY: 400,
    ErrorCode.CLIP_TOO_LARGE: 413,
    ErrorCode.CLIP_TOO_MANY_PIXELS: 413,
    ErrorCode.CLIP_TOO_LONG: 422,
    ErrorCode.CLIP_TOO_MANY_FRAMES: 422,
    ErrorCode.CLIP_UNSUPPORTED: 415,
    ErrorCode.CLIP_CORRUPT: 400,
}


@dataclass(frozen=True, slots=True)
class ImageInfo:
    format: str  # "JPEG" | "PNG" | "WEBP"; a clip: "GIF" | "MP4" | "MOV" | "WEBM"
    content_type: str
    width: int
    height: int
    sha256: str
    media: str = "photo"  # photo | clip
    clip: dict[str, Any] | None = None  # a clip: its length, frames, container and codec, as probed


def is_clip(data: bytes) -> bool:
    """A GIF, MP4, MOV or WebM file, by its magic bytes (a clip, whatever it holds)."""
    return clips.sniff(data) is not None


def check_upload(data: bytes, *, max_bytes: int, max_pixels: int, clip_limits: ClipLimits) -> ImageInfo:
    """A photo (:func:`validate`) or a clip (:func:`validate_clip`), by its magic bytes; ``BadImage`` otherwise.
    A clip's probe demuxes it: call this in a thread for a clip or a big file."""
    if is_clip(data):
        return validate_clip(data, clip_limits)
    return validate(data, max_bytes=max_bytes, max_pixels=max_pixels)


def validate_clip(data: bytes, limits: ClipLimits) -> ImageInfo:
    """Accept a GIF or short clip within ``limits`` or raise ``BadImage`` with the clip's code, its limit and what
    the clip is (its sentence: "That clip is 90 s long; the limit is 60 s.")."""
    from queue_gateway.public.clipprobe import probe  # PyAV: imported by the gateway when a clip first comes

    try:
        info = probe(data, limits)
    except ClipProblem as problem:
        raise clip_refusal(problem) from None
    about = {"duration_s": info.duration_s, "source_frames": info.frames, "container": info.container,
             "codec": info.codec}  # fmt: skip
    return ImageInfo(
        info.container.upper(), clips.CONTENT_TYPES[info.container], info.width, info.height,
        hashlib.sha256(data).hexdigest(), media="clip", clip=about,
    )  # fmt: skip


def clip_refusal(problem: ClipProblem) -> BadImage:
    """The answer for a clip the probe refused: its code and status, the limit, what the clip is, and the sentence
    (the English one for a program's log; the person's comes in their language from the same catalogue)."""
    limit = int(problem.limit) if problem.limit is not None else None
    message = texts.for_error(problem.code, texts.DEFAULT_LANGUAGE, limit=limit, value=problem.value)
    status = CLIP_STATUSES.get(problem.code, 400)
    return BadImage(problem.code, message, status, limit=limit, value=problem.value)


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
