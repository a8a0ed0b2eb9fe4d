"""Clips for tests, made in the test with Pillow and PyAV: a photo panning, frames that say their own number, and
hostile files (lying headers, huge GIF screens, zero-delay GIFs, truncated MP4s)."""

from __future__ import annotations

import io
import itertools
import struct
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

Array = np.ndarray[Any, np.dtype[np.uint8]]

PAN_SIZE = (640, 480)
"""The panning window over bus.jpg (810x1080): it keeps the two persons on the left in view all the way."""


def panning(
    photo: Path | Image.Image, *, seconds: float = 3.0, fps: float = 10, size: tuple[int, int] = PAN_SIZE
) -> list[Array]:
    """The photo seen through a window of ``size`` sliding left to right, ``seconds`` long at ``fps``."""
    return list(panning_frames(photo, seconds=seconds, fps=fps, size=size))


def panning_frames(photo: Path | Image.Image, *, seconds: float, fps: float, size: tuple[int, int]) -> Iterator[Array]:
    """``panning``, one frame at a time (a long clip's frames need not all be in memory at once)."""
    if isinstance(photo, Path):
        with Image.open(photo) as image:
            picture = np.asarray(image.convert("RGB"))
    else:
        picture = np.asarray(photo.convert("RGB"))
    count = round(seconds * fps)
    width, height = size
    top = min(380, picture.shape[0] - height)
    for i in range(count):
        left = round((picture.shape[1] - width) * i / max(count - 1, 1))
        yield np.ascontiguousarray(picture[top : top + height, left : left + width])


def numbered(count: int, *, size: tuple[int, int] = (160, 120)) -> list[Array]:
    """Frames that carry their own index in two flat colour levels (16 apart: it survives lossy coding)."""
    frames = []
    for i in range(count):
        frame = np.zeros((size[1], size[0], 3), dtype=np.uint8)
        frame[..., 0] = (i % 16) * 16 + 8
        frame[..., 1] = (i // 16) * 16 + 8
        frame[..., 2] = 128
        frames.append(frame)
    return frames


def index_of(frame: Array) -> int:
    """The index a ``numbered`` frame carries (read from its centre, after any scaling and coding)."""
    h, w = frame.shape[:2]
    r, g = (float(frame[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4, c].mean()) for c in (0, 1))
    return round((g - 8) / 16) * 16 + round((r - 8) / 16)


def gif(frames: Sequence[Array], *, fps: float = 10, durations_ms: Sequence[int] | None = None) -> bytes:
    """A looping GIF (Pillow); ``durations_ms`` per frame, else 1/fps each."""
    pictures = [Image.fromarray(frame) for frame in frames]
    out = io.BytesIO()
    duration: Any = list(durations_ms) if durations_ms is not None else round(1000 / fps)
    pictures[0].save(out, "GIF", save_all=True, append_images=pictures[1:], duration=duration, loop=0)
    return out.getvalue()


def video(
    frames: Iterable[Array], *, fps: float = 10, codec: str = "libx264", container: str = "mp4", **options: str
) -> bytes:
    """An MP4 (H.264), WebM (``codec="libvpx-vp9"``, ``container="webm"``) or other video, through PyAV; the
    frames are encoded as they come."""
    out = io.BytesIO()
    frames = iter(frames)
    first = next(frames)
    height, width = first.shape[:2]
    with av.open(out, "w", format=container) as box:
        stream = box.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = width - width % 2, height - height % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {**({"preset": "ultrafast"} if codec == "libx264" else {}), **options}
        for frame in itertools.chain([first], frames):
            box.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        box.mux(stream.encode(None))
    return out.getvalue()


def as_telegram_animation(data: bytes, seconds: float) -> bytes:
    """A GIF as Telegram hands it to a bot: the same frames in an H.264 MP4, over the same time."""
    frames, _ = decoded(data)
    return video(frames, fps=len(frames) / seconds)


def decoded(data: bytes) -> tuple[list[Array], dict[str, Any]]:
    """Every frame of an animation as RGB, and what its container says (format, codec, pixel format, seconds)."""
    with av.open(io.BytesIO(data)) as box:
        stream = box.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in box.decode(stream)]
        about = {
            "format": box.format.name,
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "duration_s": (box.duration or 0) / 1_000_000,
        }
    return frames, about


def top_level_boxes(data: bytes) -> list[str]:
    """The order of an MP4's top-level boxes (``moov`` before ``mdat`` when it starts at once)."""
    names, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, offset)
        names.append(kind.decode("latin-1"))
        if size == 1:
            size = struct.unpack_from(">Q", data, offset + 8)[0]
        if size < 8:
            break
        offset += size
    return names


# --- hostile files ------------------------------------------------------------------------------------


def gif_screen(width: int, height: int) -> bytes:
    """A tiny two-frame GIF whose logical screen claims ``width`` x ``height``."""
    data = bytearray(gif(numbered(2, size=(8, 8))))
    struct.pack_into("<HH", data, 6, width, height)
    return bytes(data)


def zero_delay_gif(count: int) -> bytes:
    """``count`` 4x4 frames with a delay of 0 (players show each for 0.1 s: a long animation)."""
    palette = [0, 0, 0, 255, 255, 255] + [0] * 762
    pictures = []
    for i in range(count):
        picture = Image.new("P", (4, 4), i % 2)
        picture.putpalette(palette)
        pictures.append(picture)
    out = io.BytesIO()
    pictures[0].save(out, "GIF", save_all=True, append_images=pictures[1:], duration=0, loop=0)
    return out.getvalue()


def dense_mp4(count: int, *, seconds: float = 1.0) -> bytes:
    """``count`` tiny frames squeezed into ``seconds``: the clip is short, but every frame must be decoded."""
    frames = [np.full((16, 16, 3), (i * 7) % 256, dtype=np.uint8) for i in range(count)]
    return video(frames, fps=count / seconds)


def header_claims(data: bytes, seconds: int) -> bytes:
    """The MP4 with its movie, track and media headers (``mvhd``, ``tkhd``, ``mdhd``) claiming ``seconds``."""
    out = bytearray(data)
    movie_scale = 0
    for box in (b"mvhd", b"mdhd"):
        at = out.find(box)
        assert out[at + 4] == 0, "version 0 headers only"
        scale = struct.unpack_from(">I", out, at + 16)[0]
        struct.pack_into(">I", out, at + 20, scale * seconds)
        movie_scale = movie_scale or scale
    at = out.find(b"tkhd")
    struct.pack_into(">I", out, at + 24, movie_scale * seconds)
    return bytes(out)


def stretched(data: bytes, seconds_per_frame: int) -> bytes:
    """The MP4 with its sample table (``stts``) making every frame last ``seconds_per_frame``: a real timeline
    of hours in a few KB."""
    out = bytearray(data)
    scale = struct.unpack_from(">I", out, out.find(b"mdhd") + 16)[0]
    at = out.find(b"stts")
    entries = struct.unpack_from(">I", out, at + 8)[0]
    for k in range(entries):
        count = struct.unpack_from(">I", out, at + 12 + 8 * k)[0]
        struct.pack_into(">II", out, at + 12 + 8 * k, count, scale * seconds_per_frame)
    return bytes(out)
