"""What a clip may be and how it is sampled and sent back: plain picklable settings, free of PyAV.

The worker's main process builds these and hands them to an inference process; only that process imports PyAV.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Prefer = Literal["mp4", "gif", "smallest"]
"""The animation sent back: ``mp4`` (Telegram's ``sendAnimation``, the web page), ``gif``, or the ``smallest`` of
both (Discord shows either inline)."""

DISCORD_MAX_BYTES = 10 * 1024 * 1024  # attachments of bots and webhooks
TELEGRAM_MAX_BYTES = 50 * 1000 * 1000  # uploads other than photos
WORK_SIDE = 640  # the model's input is 416-640 px: larger frames only cost decoding and resizing
OUT_SIDE = 480  # the animation's long side: a chat shows it small, and every frame is held until it is encoded


@dataclass(frozen=True, slots=True)
class ClipLimits:
    """What a clip may be. Every one is checked before a frame is decoded, and again while decoding."""

    max_bytes: int = 20_000_000  # Telegram's getFile cap
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
