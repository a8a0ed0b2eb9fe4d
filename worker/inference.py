"""Inference in child processes: one process (and one model) per slot, loaded and warmed before the worker consumes.

The event loop (and so the AMQP heartbeat) never waits on the model, whatever the model does with the GIL. A
model that crashes (segfault, OOM kill) takes down only its slot's process, and one that hangs past the job's
deadline has its process killed: either way only that slot is rebuilt, the other slots keep working, and the
worker hands the job back to the queue (which counts the delivery).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from queue_gateway.public.clips import ClipOptions
from worker.detections import Detection, Detector, Thresholded
from worker.errors import InferenceCrashed, JobTimedOut, ModelUnavailable
from worker.slot import SlotDied, SlotProcess

log = logging.getLogger(__name__)

T = TypeVar("T")

CLIP_DEADLINE_SHARE = 0.9  # of the job's deadline: a clip stops itself (a final error) before its process is killed
PROGRESS_POLL_S = 0.25  # how often the worker reads a clip's progress from its slot


@dataclass(frozen=True, slots=True)
class DetectorSpec:
    """Everything a child process needs to build its detector (picklable)."""

    model: str
    data_dir: Path
    conf: float | None = None  # None: the model's own threshold
    iou: float = 0.45
    imgsz: int | None = None
    max_det: int = 300
    threads: int = 1
    auto_export: bool = False
    max_pixels: int = 25_000_000
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Job:
    """One photo for a slot: its bytes and what the person asked for."""

    data: bytes
    conf: float | None = None
    max_det: int | None = None
    classes: tuple[str, ...] | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Inference:
    """What one image gave: detections as JSON-ready dicts and the annotated JPEG."""

    detections: list[dict[str, Any]]
    image: bytes
    width: int
    height: int
    inference_ms: float
    model: str
    conf: float | None = None  # the threshold it was filtered at


@dataclass(frozen=True, slots=True)
class ClipJob:
    """One GIF or short clip for a slot: its bytes, what the person asked for, how to sample and send it back."""

    data: bytes
    conf: float | None = None
    max_det: int | None = None
    classes: tuple[str, ...] | None = None
    language: str | None = None
    options: ClipOptions = field(default_factory=ClipOptions)


@dataclass(frozen=True, slots=True)
class ClipInference:
    """What one clip gave: the annotated animation, what was found at each sample time, and the summary."""

    animation: bytes
    content_type: str  # video/mp4 or image/gif
    frames: list[dict[str, Any]]  # {"t": seconds, "detections": [...]} per sample time, in the clip's pixels
    frames_detected: int  # distinct frames run through the model (one on screen at several times runs once)
    summary: dict[str, int]  # label -> the most seen in any one frame ("up to 3 persons, 1 dog")
    duration_s: float  # of the clip, as its frames span it
    source: dict[str, Any]  # the clip as probed: container, codec, width, height, frames, fps, bytes
    fps: float  # of the animation
    width: int
    height: int
    timings_ms: dict[str, float]  # probe, decode, detect, draw, encode, total
    model: str
    conf: float | None = None  # the threshold its frames were filtered at

    @property
    def inference_ms(self) -> float:
        """The model's own time over all the frames."""
        return self.timings_ms.get("detect", 0.0)


# --- inside each child process -----------------------------------------------------------------------

_state: dict[str, Any] = {}


def build_detector(spec: DetectorSpec) -> Detector:
    """``py:package.module:factory`` for a detector of your own, anything else through ``worker.model_loader``."""
    if spec.model.startswith("py:"):
        module_name, _, attr = spec.model[3:].partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        detector: Detector = factory(spec)
        return detector
    from worker.model_loader import load_detector

    return load_detector(
        spec.model,
        data_dir=spec.data_dir,
        conf=spec.conf,
        iou=spec.iou,
        imgsz=spec.imgsz,
        threads=spec.threads,
        auto_export=spec.auto_export,
        max_det=spec.max_det,
    )


def _init_process(spec: DetectorSpec, progress: Any = None) -> None:
    """The slot process's start: prepare the offline environment, load and warm the model; keep any error to report.

    ``progress``: the slot's shared ``[done, total]`` (a ``RawArray``) that a clip writes after each frame."""
    from worker.offline import prepare_offline_env

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker stops its slots itself, after the jobs in hand
    _state["progress"] = progress
    _state["threads"] = spec.threads
    try:
        prepare_offline_env(spec.data_dir / "ultralytics")
        detector = build_detector(spec)
        detector.predict(np.full((64, 64, 3), 114, dtype=np.uint8))  # warm-up: first call allocates
        _state["detector"] = detector
    except Exception as exc:  # reported by _ready(): a sentence, not a broken pool
        _state["error"] = str(exc) or type(exc).__name__


def _ready() -> tuple[int, str]:
    if "error" in _state:
        raise ModelUnavailable(_state["error"])
    return os.getpid(), _state["detector"].name


def _detect(job: Job, max_pixels: int) -> Inference:
    return process(_state["detector"], job, max_pixels)


def process(detector: Detector, job: Job, max_pixels: int, *, clock: Callable[[str], None] | None = None) -> Inference:
    """Decode, detect, filter and annotate one photo: all a slot does to a job (``benchmarks.bench_loop`` times
    it). ``clock`` is called with each stage's name as it ends (decode, detect, annotate)."""
    from worker.annotate import open_photo, render

    tick = clock or _no_clock
    photo = open_photo(job.data, max_pixels=max_pixels)
    tick("decode")
    started = time.perf_counter()
    found, threshold = _predict(detector, photo.pixels, job.conf)
    elapsed_ms = (time.perf_counter() - started) * 1000
    tick("detect")
    found = _filter(found, replace(job, conf=threshold))
    scale, (height, width) = photo.scale, photo.pixels.shape[:2]
    annotated = render(photo.picture, found, label=_labeller(job.language))  # drawn on the decoded picture
    full_size = [_scaled(d, scale).to_json() for d in found]  # a large JPEG was decoded at a reduced scale
    tick("annotate")
    return Inference(
        full_size, annotated, round(width * scale), round(height * scale), elapsed_ms, detector.name, threshold
    )


def _predict(detector: Detector, pixels: Any, conf: float | None) -> tuple[list[Detection], float | None]:
    """The detections, and the threshold they are filtered at: the job's own, or the model's. A job that asks for
    less than the model's own threshold has the detector keep that much for it alone (the others pay nothing)."""
    default = detector.conf if isinstance(detector, Thresholded) else None
    if not isinstance(detector, Thresholded) or default is None or conf is None or conf >= default:
        return detector.predict(pixels), conf if conf is not None else default
    detector.use_threshold(conf)
    try:
        return detector.predict(pixels), conf
    finally:
        detector.use_threshold(default)


def _no_clock(stage: str) -> None:
    """No stage timing."""


def _scaled(detection: Detection, scale: float) -> Detection:
    if scale == 1.0:
        return detection
    x1, y1, x2, y2 = detection.box
    return replace(detection, box=(x1 * scale, y1 * scale, x2 * scale, y2 * scale))


def _detect_clip(job: ClipJob, deadline_s: float) -> ClipInference:
    """A clip on this slot's model, frame by frame, reporting ``[done, total]`` in the slot's shared progress."""
    from worker.clips.pipeline import run_clip

    detector: Detector = _state["detector"]
    progress = _state.get("progress")

    def on_frame(done: int, total: int) -> None:
        if progress is not None:
            progress[1] = total  # total first: a reader never sees done > total
            progress[0] = done

    with _threshold_for(detector, job.conf) as threshold:  # as for a photo (see _predict)
        result = run_clip(
            detector,
            job.data,
            options=job.options,
            deadline_s=deadline_s,
            keep=lambda found: _filter(found, replace(job, conf=threshold)),
            label=_labeller(job.language),
            on_frame=on_frame,
            threads=int(_state.get("threads", 1)),
        )
    info = result.info
    return ClipInference(
        animation=result.animation,
        content_type=result.content_type,
        frames=[{"t": f.t, "detections": [d.to_json() for d in f.detections]} for f in result.frames],
        frames_detected=result.detected,
        summary=result.summary,
        duration_s=info.duration_s,
        source=dataclasses.asdict(info),
        fps=result.fps,
        width=result.width,
        height=result.height,
        timings_ms=result.timings_ms,
        model=detector.name,
        conf=threshold,
    )


@contextlib.contextmanager
def _threshold_for(detector: Detector, conf: float | None) -> Iterator[float | None]:
    """The threshold a clip's detections are filtered at: the job's own, or the model's. A job that asks for less
    than the model's own threshold has the detector keep that much for the whole clip (then it is put back)."""
    default = detector.conf if isinstance(detector, Thresholded) else None
    if not isinstance(detector, Thresholded) or default is None or conf is None or conf >= default:
        yield conf if conf is not None else default
        return
    detector.use_threshold(conf)
    try:
        yield conf
    finally:
        detector.use_threshold(default)


def _filter(found: list[Detection], job: Job | ClipJob) -> list[Detection]:
    if job.conf is not None:
        found = [d for d in found if d.confidence >= job.conf]
    if job.classes is not None:
        wanted = set(job.classes)
        found = [d for d in found if d.label in wanted]
    found.sort(key=lambda d: d.confidence, reverse=True)
    return found[: job.max_det] if job.max_det is not None else found


def _labeller(language: str | None) -> Any:
    """The class names on the image in the person's language (English names stay as the model has them)."""
    if not language:
        return None
    from queue_gateway.public import texts

    return lambda label: texts.label(label, language)


# --- in the worker process ---------------------------------------------------------------------------


class _Slot:
    """One inference process, with the model loaded."""

    def __init__(self, spec: DetectorSpec, index: int) -> None:
        self.index = index
        context = multiprocessing.get_context("spawn")
        # [done, total] of the clip in hand: written by the slot's process, read by the worker's event loop. No
        # lock: a killed process could leave one held; each 8-byte value is written and read whole.
        self.progress: Any = context.RawArray("q", 2)
        self.process = SlotProcess(context, _init_process, (spec, self.progress), name=f"inference-{index}")
        self.pid = 0
        self.model_name = ""

    async def warm(self) -> None:
        await self.process.start()
        self.pid, self.model_name = await self.process.call(_ready)

    def kill(self) -> None:
        """End the process now (it hangs, or it died already)."""
        self.process.kill()


class InferencePool:
    """``slots`` processes, each with its own model (ultralytics and ORT sessions are not shared)."""

    def __init__(self, spec: DetectorSpec, slots: int, *, timeout_s: float = 60.0) -> None:
        self._spec = spec
        self._slots = slots
        self._timeout_s = timeout_s
        self._free: asyncio.Queue[_Slot] = asyncio.Queue()
        self._all: dict[int, _Slot] = {}
        self.model_name = ""

    @property
    def pids(self) -> list[int]:
        return sorted(slot.pid for slot in self._all.values())

    async def start(self) -> None:
        """Start the processes and wait until every model is loaded and warm (raises ModelUnavailable)."""
        slots = [_Slot(self._spec, index) for index in range(self._slots)]
        self._all = {slot.index: slot for slot in slots}
        try:
            await asyncio.gather(*(slot.warm() for slot in slots))
        except ModelUnavailable:
            for slot in slots:
                slot.kill()
            raise
        except SlotDied:
            for slot in slots:
                slot.kill()
            raise ModelUnavailable("the inference process died while loading the model") from None
        self.model_name = slots[0].model_name
        for slot in slots:
            self._free.put_nowait(slot)
        log.info("model %s warm in %d process(es) %s", self.model_name, len(slots), self.pids)

    async def detect(self, job: Job) -> Inference:
        """Run one photo on the next free slot, within the deadline."""
        return await self._on_slot(_detect, job, self._spec.max_pixels)

    async def detect_clip(self, job: ClipJob, on_progress: Callable[[int, int], None] | None = None) -> ClipInference:
        """Run one clip on the next free slot. It stops itself (``ClipTooSlow``, final) at ``CLIP_DEADLINE_SHARE``
        of the deadline; past the deadline its process is killed as for a photo (``JobTimedOut``).

        ``on_progress(done, total)`` is called on the event loop whenever the slot has done more frames (read
        every ``PROGRESS_POLL_S``); keep it quick: record the numbers, let another task send them on."""
        return await self._on_slot(_detect_clip, job, self._timeout_s * CLIP_DEADLINE_SHARE, on_progress=on_progress)

    async def _on_slot(
        self, function: Callable[..., T], *args: Any, on_progress: Callable[[int, int], None] | None = None
    ) -> T:
        """``function(*args)`` in the next free slot's process, within the deadline; a hang or a crash costs
        only that slot, which is rebuilt."""
        slot = await self._free.get()
        try:
            if not slot.process.running:  # a call to it was interrupted, which killed its process
                slot = await self._replace(slot)
            slot.progress[0] = slot.progress[1] = 0
            return await self._watch(slot.process.call(function, *args), slot, on_progress)
        except TimeoutError:
            log.error("inference process %d ran past the %.0f s deadline; killing it", slot.pid, self._timeout_s)
            slot = await self._replace(slot)
            raise JobTimedOut(f"the detector took longer than {self._timeout_s:g} s") from None
        except SlotDied:
            log.error("inference process %d died; starting a fresh one", slot.pid)
            slot = await self._replace(slot)
            raise InferenceCrashed("the inference process died") from None
        finally:
            self._free.put_nowait(slot)

    async def _watch(
        self, call: Coroutine[Any, Any, T], slot: _Slot, on_progress: Callable[[int, int], None] | None
    ) -> T:
        """The call's result within the deadline; meanwhile the slot's progress goes to ``on_progress`` as it
        changes. Past the deadline the call is cancelled and TimeoutError raised (the slot is then killed)."""
        if on_progress is None:
            async with asyncio.timeout(self._timeout_s):
                return await call
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        reported = (0, 0)
        future = asyncio.ensure_future(call)
        try:
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError
                await asyncio.wait([future], timeout=min(left, PROGRESS_POLL_S))
                now = int(slot.progress[0]), int(slot.progress[1])
                if now != reported and now[1] > 0 and 0 <= now[0] <= now[1]:
                    reported = now
                    on_progress(*now)
                if future.done():
                    return future.result()
        finally:
            future.cancel()  # a no-op once it is done

    async def _replace(self, broken: _Slot) -> _Slot:
        broken.kill()
        fresh = _Slot(self._spec, broken.index)
        self._all[broken.index] = fresh
        try:
            await fresh.warm()
        except (ModelUnavailable, SlotDied) as exc:
            log.error("the replacement inference process could not load the model: %s", exc)
        except BaseException:
            fresh.kill()
            raise
        return fresh

    async def close(self) -> None:
        slots, self._all = list(self._all.values()), {}
        await asyncio.gather(*(slot.process.stop() for slot in slots))
