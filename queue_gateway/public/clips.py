"""What a GIF or short clip may be, how it is sampled and sent back, and why one is refused: plain, picklable
settings free of PyAV, shared by the gateway (which refuses a clip at intake) and the worker (which samples it).

``queue_gateway.public.clipprobe`` reads a clip's structure with PyAV; only what imports it pays for PyAV (the
gateway's intake, and a worker's inference process that takes a clip: never the worker's own process).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from queue_gateway.public.contract import ErrorCode, Prefer

Container = Literal["gif", "mp4", "mov", "webm"]

MiB = 1024 * 1024
DISCORD_MAX_BYTES = 10 * MiB  # attachments of bots and webhooks
TELEGRAM_MAX_BYTES = 50 * 1000 * 1000  # uploads other than photos
RESULT_MAX_BYTES = DISCORD_MAX_BYTES  # every animation we send back stays under this, whatever the chat
WORK_SIDE = 640  # the model's input is 416-640 px: larger frames only cost decoding and resizing
OUT_SIDE = 480  # the animation's long side: a chat shows it small, and every frame is held until it is encoded
SOURCE_FPS = 60  # the most frames a second a clip may really have (every one of them is decoded)

CONTENT_TYPES: dict[Container, str] = {
    "gif": "image/gif",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "webm": "video/webm",
}
"""The content type each container we take is stored (and served back) with."""

_BMFF_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")
_EBML = b"\x1a\x45\xdf\xa3"


class ClipProblem(ValueError):
    """Why a clip is not one we take: ``code`` is one of the gateway's error codes (``clip_too_long`` …);
    ``limit`` the limit it passed and ``value`` what the clip is (seconds, bytes, pixels or frames), for the
    person's sentence ("That clip is 90 s long; the limit is 60 s.")."""

    def __init__(self, code: ErrorCode, message: str, *, limit: float | None = None, value: float | None = None):
        super().__init__(message)
        self.code = code
        self.limit = limit
        self.value = value


@dataclass(frozen=True, slots=True)
class ClipLimits:
    """What a clip may be. Every one is checked before a frame is decoded, and again while decoding."""

    max_bytes: int = 20 * MiB  # Telegram's getFile cap
    max_duration_s: float = 60.0
    max_pixels: int = 1920 * 1080  # per frame: portrait 1080x1920 fits too
    max_source_frames: int = 3_600  # 60 s at 60 fps: every one of them is decoded, even those not sampled


@dataclass(frozen=True, slots=True)
class ClipOptions:
    """How a clip is sampled and sent back."""

    limits: ClipLimits = field(default_factory=ClipLimits)
    max_frames: int = 120  # sample times per clip ("frame 40 of 120")
    max_fps: float = 10.0  # sample times per second of clip
    work_side: int = WORK_SIDE
    out_side: int = OUT_SIDE
    prefer: Prefer = "mp4"
    max_output_bytes: int = DISCORD_MAX_BYTES


def sniff(data: bytes) -> Container | None:
    """The container from the magic bytes (GIF, ISO BMFF as MP4 or MOV, EBML as WebM), or None for anything else."""
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[4:8] in _BMFF_BOXES:
        return "mov" if data[4:8] == b"ftyp" and data[8:12] == b"qt  " else "mp4"
    if data[:4] == _EBML:
        return "webm"
    return None


def prefer_for(platform: str) -> Prefer:
    """How a clip goes back to where it came from: the smallest of GIF and MP4 on Discord (it shows both inline),
    MP4 elsewhere (Telegram's ``sendAnimation``, a browser's ``<video>``, an HTTP client)."""
    return "smallest" if platform == "discord" else "mp4"
