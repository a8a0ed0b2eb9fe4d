"""Frames sampled evenly in time, decoded one at a time and shrunk to a working size.

The sampler decodes the clip in order (inter-coded video cannot skip frames) and keeps one decoded frame in hand:
for each sample time it yields the frame on screen at that time, as RGB, at most ``work_side`` pixels on its long
side. Nothing else is kept, so memory does not grow with the clip. What it decodes is counted as it goes (frames,
pixels per frame), and it stops with ``ClipTooSlow`` when its deadline passes — including the time its caller
spends between two frames.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass

import numpy as np
from av.video.frame import VideoFrame

from queue_gateway.public.clipprobe import ClipInfo, open_clip, probe
from queue_gateway.public.clips import WORK_SIDE, ClipLimits
from queue_gateway.public.contract import ErrorCode
from worker.detections import RGBImage
from worker.errors import BadClip, ClipTooSlow, clip_errors

_EPSILON_S = 0.0005  # a frame stamped within half a millisecond of a sample time is that sample's frame


@dataclass(frozen=True, slots=True)
class SamplePlan:
    """When to sample: ``times`` (seconds from the first frame), one every ``1 / fps`` seconds."""

    times: tuple[float, ...]
    fps: float


def plan_samples(info: ClipInfo, *, max_frames: int, max_fps: float) -> SamplePlan:
    """At most ``max_frames`` sample times, at most ``max_fps`` a second, and never more often than the clip's
    own frames come, spread evenly over the clip."""
    if max_frames < 1 or max_fps <= 0:
        raise ValueError("max_frames must be at least 1 and max_fps above 0")
    duration = info.duration_s
    if duration <= 0 or info.frames <= 1:
        return SamplePlan((0.0,), max_fps)
    step = max(1.0 / max_fps, duration / max_frames, duration / info.frames)
    count = max(1, min(max_frames, math.floor(duration / step + 1e-6)))
    return SamplePlan(tuple(i * step for i in range(count)), 1.0 / step)


class FrameSampler:
    """An iterator of ``(t_seconds, RGB image)`` over a clip's sample times; ``total`` and ``fps`` are known up
    front. When one source frame is on screen at several sample times, the same array object is yielded again
    (``image is previous``), so a caller can reuse its work on it."""

    def __init__(
        self, data: bytes, info: ClipInfo, plan: SamplePlan, *, deadline: float, work_side: int, limits: ClipLimits
    ) -> None:
        self.info = info
        self.plan = plan
        self.total = len(plan.times)
        self.fps = plan.fps
        self.decoded = 0
        self._data = data
        self._deadline = deadline
        self._work_side = work_side
        self._limits = limits
        self._frames = self._generate()

    def __iter__(self) -> Iterator[tuple[float, RGBImage]]:
        return self

    def __next__(self) -> tuple[float, RGBImage]:
        return next(self._frames)

    def close(self) -> None:
        """Stop early: the container is closed now rather than when the sampler is collected."""
        self._frames.close()

    def _generate(self) -> Generator[tuple[float, RGBImage], None, None]:
        times = self.plan.times
        index = 0
        shown: VideoFrame | None = None  # the frame on screen at the next sample time, until a later one comes
        image: RGBImage | None = None
        with clip_errors(), open_clip(self._data, self.info.container, self._limits) as (container, stream):
            start: float | None = None
            for frame in container.decode(stream):
                self._count(frame)
                stamp = frame.time if frame.time is not None else self.decoded / max(self.info.fps, 1.0)
                start = stamp if start is None else start
                while shown is not None and index < len(times) and times[index] < stamp - start - _EPSILON_S:
                    image = image if image is not None else self._rgb(shown)
                    self._check_deadline()
                    yield times[index], image
                    index += 1
                if index >= len(times):
                    return
                shown, image = frame, None
            if shown is None:
                raise BadClip(ErrorCode.CLIP_CORRUPT, "no frame of the clip could be decoded")
            while index < len(times):  # the last frame stays on screen to the end
                image = image if image is not None else self._rgb(shown)
                self._check_deadline()
                yield times[index], image
                index += 1

    def _count(self, frame: VideoFrame) -> None:
        """Bound what decoding may cost, whatever the headers said: time, frames, pixels per frame."""
        self.decoded += 1
        self._check_deadline()
        if self.decoded > self._limits.max_source_frames:
            raise BadClip(
                ErrorCode.CLIP_TOO_MANY_FRAMES,
                f"the clip has more than {self._limits.max_source_frames} frames",
                limit=self._limits.max_source_frames,
            )
        if frame.width * frame.height > self._limits.max_pixels:
            raise BadClip(
                ErrorCode.CLIP_TOO_MANY_PIXELS,
                f"a frame is {frame.width}x{frame.height}, more than {self._limits.max_pixels / 1e6:.1f} MP",
                limit=self._limits.max_pixels,
                value=frame.width * frame.height,
            )

    def _check_deadline(self) -> None:
        if time.monotonic() > self._deadline:
            raise ClipTooSlow(
                ErrorCode.CLIP_TOO_SLOW, f"the clip's frames were not done in time ({self.decoded} decoded)"
            )

    def _rgb(self, frame: VideoFrame) -> RGBImage:
        """The frame as RGB at the working size; transparency (GIF) composited onto white."""
        width, height = working_size(frame.width, frame.height, self._work_side)
        if any(component.is_alpha for component in frame.format.components) or frame.format.name == "pal8":
            rgba = frame.to_ndarray(width=width, height=height, format="rgba", interpolation="AREA")
            if rgba[..., 3].min() == 255:  # opaque after all (most GIF frames): no blending
                return np.ascontiguousarray(rgba[..., :3], dtype=np.uint8)
            alpha = rgba[..., 3:4].astype(np.uint16)
            flat = (rgba[..., :3] * alpha + 255 * (255 - alpha)) // 255
            return np.ascontiguousarray(flat, dtype=np.uint8)
        rgb = frame.to_ndarray(width=width, height=height, format="rgb24", interpolation="AREA")
        return np.asarray(rgb, dtype=np.uint8)


def working_size(width: int, height: int, side: int) -> tuple[int, int]:
    """(width, height) scaled down so that the long side is at most ``side`` (never up)."""
    scale = min(1.0, side / max(width, height))
    return max(round(width * scale), 1), max(round(height * scale), 1)


def sample_frames(
    data: bytes,
    *,
    max_frames: int,
    max_fps: float,
    deadline_s: float,
    work_side: int = WORK_SIDE,
    limits: ClipLimits | None = None,
    info: ClipInfo | None = None,
) -> FrameSampler:
    """``(t_seconds, RGB image)`` for up to ``max_frames`` times, at most ``max_fps`` a second, evenly spread over
    the clip; ``ClipTooSlow`` once ``deadline_s`` seconds (from this call) have passed. ``info``: the clip's
    ``probe`` when the caller has it already (else it is probed here)."""
    deadline = time.monotonic() + deadline_s
    limits = limits or ClipLimits()
    if info is None:
        with clip_errors():
            info = probe(data, limits)
    plan = plan_samples(info, max_frames=max_frames, max_fps=max_fps)
    return FrameSampler(data, info, plan, deadline=deadline, work_side=work_side, limits=limits)
