"""Annotated frames back into an animation: MP4 (H.264, yuv420p, even sides, ``+faststart``) or GIF, under a cap.

Telegram's ``sendAnimation`` takes the MP4; Discord shows either inline, so it gets the smaller of the two. When
the result is over the cap, the frames are shrunk (and, further down the ladder, every second or third one
dropped) and encoded again, a bounded number of times.
"""

from __future__ import annotations

import io
import tempfile
import time
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from queue_gateway.public.clips import DISCORD_MAX_BYTES
from queue_gateway.public.contract import ErrorCode, Prefer
from worker.detections import RGBImage
from worker.errors import BadClip, ClipTooSlow

MP4 = "video/mp4"
GIF = "image/gif"

LADDER: tuple[tuple[float, int], ...] = ((1.0, 1), (0.75, 1), (0.5, 2), (0.35, 3))
"""The attempts, in order: (scale of the sides, keep every n-th frame)."""

_X264 = {"preset": "veryfast", "crf": "25"}
_TIME_BASE = Fraction(1, 1000)


def encode_animation(
    frames: Sequence[RGBImage],
    *,
    fps: float,
    prefer: Prefer,
    max_bytes: int = DISCORD_MAX_BYTES,
    deadline: float | None = None,
    threads: int = 1,
) -> tuple[bytes, str]:
    """``(bytes, content type)``: ``mp4`` (Telegram, the web page), ``gif``, or ``smallest`` of both (Discord),
    at most ``max_bytes``. ``deadline`` (``time.monotonic()``) is checked before each attempt."""
    if not frames:
        raise ValueError("no frames to encode")
    if fps <= 0:
        raise ValueError("fps must be above 0")
    size = frames[0].shape[1], frames[0].shape[0]
    for scale, every in LADDER:
        if deadline is not None and time.monotonic() > deadline:
            raise ClipTooSlow(ErrorCode.CLIP_TOO_SLOW, "the animation could not be encoded in time")
        kept = _resized(frames[::every], _scaled(size, scale))
        rate = fps / every
        candidates = []
        if prefer in ("mp4", "smallest"):
            candidates.append((encode_mp4(kept, fps=rate, threads=threads), MP4))
        if prefer in ("gif", "smallest"):
            candidates.append((encode_gif(kept, fps=rate), GIF))
        data, content_type = min(candidates, key=lambda candidate: len(candidate[0]))
        if len(data) <= max_bytes:
            return data, content_type
    raise BadClip(
        ErrorCode.CLIP_OUTPUT_TOO_LARGE,
        f"the animation stays over {max_bytes / 1e6:.1f} MB however small",
        limit=max_bytes,
    )


def encode_mp4(frames: Sequence[RGBImage], *, fps: float, threads: int = 1) -> bytes:
    """H.264 in MP4, yuv420p, even sides, the index (``moov``) first so that players start at once."""
    height, width = frames[0].shape[:2]
    even = max(width - width % 2, 2), max(height - height % 2, 2)
    with tempfile.TemporaryDirectory(prefix="detectbot-clip-") as tmp:
        path = Path(tmp) / "out.mp4"  # +faststart rewrites the file in place: the muxer reopens it by name
        with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height = even
            stream.pix_fmt = "yuv420p"
            stream.time_base = _TIME_BASE
            stream.codec_context.thread_count = threads
            stream.options = dict(_X264)
            for index, image in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[: even[1], : even[0]]), format="rgb24")
                frame.pts = round(index * 1000 / fps)
                frame.time_base = _TIME_BASE
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        return path.read_bytes()


def encode_gif(frames: Sequence[RGBImage], *, fps: float) -> bytes:
    """A looping GIF, each frame with its own 256-colour palette (fast octree, no dither: fewer bytes)."""
    pictures = [
        Image.fromarray(image).quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        for image in frames
    ]
    out = io.BytesIO()
    duration = max(round(1000 / fps / 10) * 10, 20)  # GIF counts in 1/100 s; browsers slow anything under 20 ms
    pictures[0].save(out, "GIF", save_all=True, append_images=pictures[1:], duration=duration, loop=0)
    return out.getvalue()


def _scaled(size: tuple[int, int], scale: float) -> tuple[int, int]:
    return max(round(size[0] * scale), 2), max(round(size[1] * scale), 2)


def _resized(frames: Sequence[RGBImage], size: tuple[int, int]) -> list[RGBImage]:
    """Every frame at ``size`` (width, height): the first frame's size scaled, whatever size each had."""
    out: list[RGBImage] = []
    for image in frames:
        if (image.shape[1], image.shape[0]) == size:
            out.append(image)
        else:
            picture = Image.fromarray(image).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
            out.append(np.asarray(picture, dtype=np.uint8))
    return out
