"""Inference in child processes: one model per process, loaded and warmed before the worker consumes.

The event loop (and so the AMQP heartbeat) never waits on the model, whatever the model does with the GIL, and
a model that crashes (segfault, OOM kill) takes down only its process: the pool is rebuilt and the worker
hands the job back to the queue.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worker.detections import Detection, Detector

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DetectorSpec:
    """Everything a child process needs to build its detector (picklable)."""

    model: str
    data_dir: Path
    conf: float = 0.25
    iou: float = 0.45
    imgsz: int | None = None
    max_det: int = 300
    threads: int = 1
    auto_export: bool = False
    max_pixels: int = 25_000_000
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Inference:
    """What one image gave: detections as JSON-ready dicts and the annotated JPEG."""

    detections: list[dict[str, Any]]
    image: bytes
    width: int
    height: int
    inference_ms: float
    model: str


class BadImage(Exception):
    """The image cannot be decoded: a final error for the job, not the worker's fault."""


class ModelUnavailable(Exception):
    """The model could not be loaded; the message says what to set."""


class WorkerCrashed(Exception):
    """An inference process died while working on the job."""


# --- inside each child process -----------------------------------------------------------------------

_state: dict[str, Any] = {}


def build_detector(spec: DetectorSpec) -> Detector:
    """``py:package.module:factory`` for a detector of your own, anything else through ``worker.models``."""
    if spec.model.startswith("py:"):
        module_name, _, attr = spec.model[3:].partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        detector: Detector = factory(spec)
        return detector
    from worker.models import load_detector

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


def _init_process(spec: DetectorSpec) -> None:
    """Pool initializer: prepare the offline environment, load and warm the model; keep any error to report."""
    from worker.offline import prepare_offline_env

    try:
        prepare_offline_env(spec.data_dir / "ultralytics")
        detector = build_detector(spec)
        detector.predict(np.full((64, 64, 3), 114, dtype=np.uint8))  # warm-up: first call allocates
        _state["detector"] = detector
    except Exception as exc:  # reported by ready(): a sentence, not a broken pool
        _state["error"] = str(exc) or type(exc).__name__


def _ready() -> tuple[int, str]:
    if "error" in _state:
        raise ModelUnavailable(_state["error"])
    return os.getpid(), _state["detector"].name


def _detect(data: bytes, conf: float | None, max_det: int | None, max_pixels: int) -> Inference:
    from worker.annotate import ImageError, annotate, load_image

    detector: Detector = _state["detector"]
    try:
        image = load_image(data, max_pixels=max_pixels)
    except ImageError as exc:
        raise BadImage(str(exc)) from None
    started = time.perf_counter()
    found = detector.predict(image)
    elapsed_ms = (time.perf_counter() - started) * 1000
    found = _filter(found, conf, max_det)
    height, width = image.shape[:2]
    return Inference([d.to_json() for d in found], annotate(image, found), width, height, elapsed_ms, detector.name)


def _filter(found: list[Detection], conf: float | None, max_det: int | None) -> list[Detection]:
    if conf is not None:
        found = [d for d in found if d.confidence >= conf]
    found.sort(key=lambda d: d.confidence, reverse=True)
    return found[:max_det] if max_det is not None else found


# --- in the worker process ---------------------------------------------------------------------------


class InferencePool:
    """``slots`` processes, each with its own model (ultralytics and ORT sessions are not shared)."""

    def __init__(self, spec: DetectorSpec, slots: int) -> None:
        self._spec = spec
        self._slots = slots
        self._pool: ProcessPoolExecutor | None = None
        self.model_name = ""
        self.pids: list[int] = []

    async def start(self) -> None:
        """Start the processes and wait until every model is loaded and warm (raises ModelUnavailable)."""
        self._pool = ProcessPoolExecutor(
            max_workers=self._slots,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_process,
            initargs=(self._spec,),
        )
        loop = asyncio.get_running_loop()
        answers = await asyncio.gather(*(loop.run_in_executor(self._pool, _ready) for _ in range(self._slots)))
        self.pids = sorted({pid for pid, _ in answers})
        self.model_name = answers[0][1]
        log.info("model %s warm in %d process(es) %s", self.model_name, len(self.pids), self.pids)

    async def detect(self, data: bytes, *, conf: float | None, max_det: int | None) -> Inference:
        pool = self._pool
        if pool is None:
            raise RuntimeError("InferencePool.start() was not awaited")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pool, _detect, data, conf, max_det, self._spec.max_pixels)
        except BrokenProcessPool:
            await self._replace(pool)
            raise WorkerCrashed("the inference process died") from None

    async def _replace(self, broken: ProcessPoolExecutor) -> None:
        if self._pool is not broken:
            return  # another task already rebuilt it
        log.error("an inference process died; starting a fresh pool")
        self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)
        await self.start()

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
