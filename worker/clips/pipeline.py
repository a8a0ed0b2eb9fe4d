"""One clip through one detector: probe, sample, detect and draw frame by frame, encode, summarise.

Blocking; it runs in an inference slot's process (``worker.inference``) or in a benchmark's loop. The frames get
``FRAMES_SHARE`` of the deadline and the encoding what is left; each phase stops with ``ClipTooSlow`` when its
share is spent, so a clip ends cleanly before the slot's own deadline would have to kill its process.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import cv2
import numpy as np

from queue_gateway.public.clipprobe import ClipInfo, probe
from queue_gateway.public.clips import ClipOptions
from worker.annotate import draw
from worker.clips.encode import encode_animation
from worker.clips.frames import sample_frames
from worker.detections import Detection, Detector, RGBImage
from worker.errors import clip_errors

FRAMES_SHARE = 0.8  # of the deadline, for decoding, detecting and drawing; the rest is the encoder's


@dataclass(frozen=True, slots=True)
class FrameDetections:
    """What was found at one sample time, in the clip's own pixel coordinates."""

    t: float
    detections: list[Detection]


@dataclass(frozen=True, slots=True)
class ClipResult:
    animation: bytes
    content_type: str
    info: ClipInfo
    fps: float  # of the animation
    width: int
    height: int
    frames: list[FrameDetections]  # one per sample time
    detected: int  # frames run through the model (a frame on screen at several sample times runs once)
    summary: dict[str, int]  # label -> the most seen in any one frame
    timings_ms: dict[str, float] = field(default_factory=dict)


def summarise(per_frame: Iterable[Sequence[Detection]]) -> dict[str, int]:
    """Each label's largest count in any one frame, most first ("up to 3 persons, 1 dog")."""
    most: Counter[str] = Counter()
    for detections in per_frame:
        for label, count in Counter(d.label for d in detections).items():
            most[label] = max(most[label], count)
    return dict(sorted(most.items(), key=lambda item: (-item[1], item[0])))


def run_clip(
    detector: Detector,
    data: bytes,
    *,
    options: ClipOptions,
    deadline_s: float,
    keep: Callable[[list[Detection]], list[Detection]] | None = None,
    label: Callable[[str], str] | None = None,
    on_frame: Callable[[int, int], None] | None = None,
    threads: int = 1,
) -> ClipResult:
    """Detect in every sampled frame; ``keep`` filters what the model found (the person's confidence and classes),
    ``label`` names the classes on the frames, ``on_frame(done, total)`` is called after each frame."""
    started = time.monotonic()
    clock = _Clock()
    with clock("probe"), clip_errors():
        info = probe(data, options.limits)
    sampler = sample_frames(
        data,
        max_frames=options.max_frames,
        max_fps=options.max_fps,
        deadline_s=deadline_s * FRAMES_SHARE - (time.monotonic() - started),
        work_side=options.work_side,
        limits=options.limits,
        info=info,
    )
    if on_frame is not None:
        on_frame(0, sampler.total)
    drawn: list[RGBImage] = []
    frames: list[FrameDetections] = []
    previous: RGBImage | None = None
    found: list[Detection] = []
    detected = 0
    try:
        while True:
            with clock("decode"):
                image_at = next(sampler, None)
            if image_at is None:
                break
            t, image = image_at
            if image is not previous:  # a new frame on screen (a repeated one keeps its detections and drawing)
                with clock("detect"):
                    found = detector.predict(image)
                    found = keep(found) if keep is not None else found
                detected += 1
                with clock("draw"):
                    drawn.append(_drawn(image, found, options.out_side, label))
                previous = image
            else:
                drawn.append(drawn[-1])
            frames.append(FrameDetections(round(t, 3), _scaled(found, info.width / image.shape[1])))
            if on_frame is not None:
                on_frame(len(frames), sampler.total)
    finally:
        sampler.close()
    with clock("encode"):
        animation, content_type = encode_animation(
            drawn,
            fps=sampler.fps,
            prefer=options.prefer,
            max_bytes=options.max_output_bytes,
            deadline=started + deadline_s,
            threads=threads,
        )
    height, width = drawn[0].shape[:2]
    clock.totals["total"] = (time.monotonic() - started) * 1000
    return ClipResult(
        animation=animation,
        content_type=content_type,
        info=info,
        fps=round(sampler.fps, 3),
        width=width,
        height=height,
        frames=frames,
        detected=detected,
        summary=summarise(frame.detections for frame in frames),
        timings_ms={name: round(ms, 1) for name, ms in clock.totals.items()},
    )


def _drawn(image: RGBImage, found: list[Detection], side: int, label: Callable[[str], str] | None) -> RGBImage:
    """The frame at the animation's size with the detections drawn. Shrunk first with OpenCV's area filter: a
    third of the time of the photo path's Lanczos, and as sharp at a frame's size."""
    height, width = image.shape[:2]
    scale = min(1.0, side / max(width, height))
    if scale < 1.0:
        size = max(round(width * scale), 1), max(round(height * scale), 1)
        image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        found = _scaled(found, size[0] / width)
    return draw(image, found, max_side=side, label=label)


def _scaled(found: list[Detection], scale: float) -> list[Detection]:
    """The boxes in pixels ``scale`` times as large."""
    if abs(scale - 1.0) < 1e-9:
        return found
    return [
        dataclasses.replace(d, box=(d.box[0] * scale, d.box[1] * scale, d.box[2] * scale, d.box[3] * scale))
        for d in found
    ]


class _Clock:
    """Milliseconds spent per phase, summed over the clip."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            spent = (time.perf_counter() - start) * 1000
            self.totals[phase] = self.totals.get(phase, 0.0) + spent
