"""What a clip is, found cheaply and before any frame is decoded; and the one way the clip modules open one.

``probe`` refuses what we do not take from the bytes and the headers first (size, magic bytes, a GIF's logical
screen, the container's claimed duration), then demuxes the video stream's packets without decoding them: that
pass is bounded by the byte cap, stops as soon as the packets run past the duration or frame cap, and gives the
frame count and the duration the packets really span, whatever the headers claim.

The gateway probes every clip before it stores anything, and a worker's inference process again before it decodes
one, with this one copy. It imports PyAV: the gateway's intake and a worker's inference process import it, never
the worker's own process.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction

import av
from av.container import InputContainer
from av.video.stream import VideoStream

from queue_gateway.public.clips import ClipLimits, ClipProblem, Container, MiB, sniff
from queue_gateway.public.contract import ErrorCode

_CODECS: dict[str, frozenset[str]] = {
    "gif": frozenset({"gif"}),
    "mp4": frozenset({"h264"}),
    "mov": frozenset({"h264"}),
    "webm": frozenset({"vp8", "vp9"}),
}
_DEMUXER = {"gif": "gif", "mp4": "mov", "mov": "mov", "webm": "matroska"}  # forced: FFmpeg never guesses
_PROBE_BYTES = 1 << 20  # how much FFmpeg may read to find the streams (the headers are at the front)
_CODEC_PIXEL_SLACK = 1.25  # FFmpeg checks max_pixels against a width padded for SIMD; ours is exact


@dataclass(frozen=True, slots=True)
class ClipInfo:
    """What ``probe`` found: the frame count and duration are those of the packets, not of the headers."""

    container: Container
    codec: str
    width: int
    height: int
    duration_s: float
    frames: int
    fps: float
    bytes: int


def probe(data: bytes, limits: ClipLimits | None = None) -> ClipInfo:
    """The clip's format, size, duration and frame count; ``ClipProblem`` (with its ``code``) for what we do not
    take."""
    limits = limits or ClipLimits()
    if not data:
        raise ClipProblem(ErrorCode.EMPTY, "the file is empty")
    if len(data) > limits.max_bytes:
        raise ClipProblem(
            ErrorCode.CLIP_TOO_LARGE,
            f"the clip is {len(data) / MiB:.1f} MB, more than the {limits.max_bytes / MiB:g} MB limit",
            limit=limits.max_bytes,
            value=len(data),
        )
    kind = sniff(data)
    if kind is None:
        raise ClipProblem(ErrorCode.CLIP_UNSUPPORTED, "the file is not a GIF, MP4, MOV or WebM clip")
    if kind == "gif":
        _check_pixels(*gif_screen(data), limits)
    with open_clip(data, kind, limits) as (container, stream):
        codec = stream.codec_context.name
        if codec not in _CODECS[kind]:
            allowed = ", ".join(sorted(_CODECS[kind]))
            raise ClipProblem(ErrorCode.CLIP_UNSUPPORTED, f"a {kind.upper()} clip in {codec}, not {allowed}")
        width, height = stream.codec_context.width, stream.codec_context.height
        _check_pixels(width, height, limits)
        _check_duration(_claimed_duration(container, stream), limits)
        frames, duration = _count_packets(container, stream, limits)
        if stream.frames and frames < stream.frames:
            raise ClipProblem(
                ErrorCode.CLIP_CORRUPT, f"the clip is truncated: {frames} of its {stream.frames} frames are there"
            )
    fps = frames / duration if duration > 0 else 0.0
    return ClipInfo(kind, codec, width, height, round(duration, 3), frames, round(fps, 3), len(data))


def gif_screen(data: bytes) -> tuple[int, int]:
    """A GIF's logical screen (width, height): FFmpeg's decoder allocates a canvas that size for every frame."""
    if len(data) < 10:
        raise ClipProblem(ErrorCode.CLIP_CORRUPT, "the GIF is truncated")
    width, height = struct.unpack_from("<HH", data, 6)
    return int(width), int(height)


@contextmanager
def open_clip(data: bytes, kind: Container, limits: ClipLimits) -> Iterator[tuple[InputContainer, VideoStream]]:
    """The container (its demuxer named, never guessed) and its video stream, with the decoder bounded: one thread,
    FFmpeg's own per-frame pixel cap. FFmpeg's errors become ``ClipProblem(CLIP_CORRUPT)``."""
    try:
        container = av.open(
            io.BytesIO(data),
            "r",
            format=_DEMUXER[kind],
            container_options={"probesize": str(_PROBE_BYTES), "analyzeduration": "1000000", "fpsprobesize": "0"},
            metadata_errors="ignore",
        )
    except av.FFmpegError as exc:
        raise ClipProblem(ErrorCode.CLIP_CORRUPT, f"the {kind.upper()} clip cannot be read ({_reason(exc)})") from None
    try:
        if not container.streams.video:
            raise ClipProblem(ErrorCode.CLIP_UNSUPPORTED, f"the {kind.upper()} file has no video")
        stream = container.streams.video[0]
        context = stream.codec_context
        context.thread_count = 1
        context.options = {"max_pixels": str(int(limits.max_pixels * _CODEC_PIXEL_SLACK))}
        yield container, stream
    except av.FFmpegError as exc:
        raise ClipProblem(ErrorCode.CLIP_CORRUPT, f"the {kind.upper()} clip is corrupt ({_reason(exc)})") from None
    finally:
        container.close()


def _reason(exc: av.FFmpegError) -> str:
    return str(getattr(exc, "strerror", None) or type(exc).__name__)


def _check_pixels(width: int, height: int, limits: ClipLimits) -> None:
    if width <= 0 or height <= 0:
        raise ClipProblem(ErrorCode.CLIP_CORRUPT, "the clip has no picture size")
    if width * height > limits.max_pixels:
        raise ClipProblem(
            ErrorCode.CLIP_TOO_MANY_PIXELS,
            f"the clip is {width}x{height}, more than {limits.max_pixels / 1e6:.1f} MP a frame",
            limit=limits.max_pixels,
            value=width * height,
        )


def _check_duration(seconds: float, limits: ClipLimits, *, whole: bool = True) -> None:
    """Refuse a clip over the duration cap; ``whole``: ``seconds`` is the clip's length (not only as far as the
    packets read so far go), which the person's sentence then names."""
    if seconds > limits.max_duration_s:
        raise ClipProblem(
            ErrorCode.CLIP_TOO_LONG,
            f"the clip is {seconds:.0f} s long, more than the {limits.max_duration_s:g} s limit",
            limit=limits.max_duration_s,
            value=seconds if whole else None,
        )


def _claimed_duration(container: InputContainer, stream: VideoStream) -> float:
    """The longest duration any header claims (container or stream); 0 when none does."""
    claims = [container.duration / av.time_base if container.duration else 0.0]
    if stream.duration and stream.time_base:
        claims.append(float(stream.duration * stream.time_base))
    return max(claims)


def _count_packets(container: InputContainer, stream: VideoStream, limits: ClipLimits) -> tuple[int, float]:
    """Demux (no decoding) the video packets: their count and the time they span; stop at the first cap passed."""
    time_base = stream.time_base or Fraction(1, 90_000)
    frames = 0
    first: int | None = None
    end = 0
    for packet in container.demux(stream):
        if packet.size == 0:
            continue  # the flush packet at the end
        frames += 1
        if frames > limits.max_source_frames:
            raise ClipProblem(
                ErrorCode.CLIP_TOO_MANY_FRAMES,
                f"the clip has more than {limits.max_source_frames} frames",
                limit=limits.max_source_frames,
            )
        stamp = packet.pts if packet.pts is not None else packet.dts
        if stamp is None:
            continue
        first = stamp if first is None else min(first, stamp)
        end = max(end, stamp + max(packet.duration or 0, 0))
        _check_duration(float((end - first) * time_base), limits, whole=False)
    if frames == 0:
        raise ClipProblem(ErrorCode.CLIP_CORRUPT, "the clip has no frames")
    duration = float((end - first) * time_base) if first is not None else 0.0
    return frames, duration
