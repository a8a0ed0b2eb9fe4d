"""Detectors of our own ``Detector`` protocol for tests that inject failures (``DETECTBOT_MODEL=py:…``).

Each factory takes the worker's ``DetectorSpec``; knobs come from environment variables that the test sets
before the worker's inference processes start.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from typing import Any

from worker.detections import Detection, RGBImage

POISON_RGB = (255, 0, 255)
"""An image whose top-left pixel has this colour is poison for the crashing detectors."""


def is_poison(image: RGBImage) -> bool:
    return tuple(int(v) for v in image[0, 0]) == POISON_RGB


class _Base:
    name = "test-detector"
    names: Mapping[int, str] = {0: "person", 5: "bus"}

    def _boxes(self, image: RGBImage) -> list[Detection]:
        h, w = image.shape[:2]
        return [
            Detection(0, "person", 0.9, (w * 0.1, h * 0.1, w * 0.4, h * 0.9)),
            Detection(5, "bus", 0.6, (w * 0.5, h * 0.2, w * 0.95, h * 0.8)),
        ]

    def close(self) -> None:
        pass


class Fixed(_Base):
    """Always finds one person and one bus."""

    def predict(self, image: RGBImage) -> list[Detection]:
        return self._boxes(image)


class SlowCpu(_Base):
    """Burns CPU in pure Python (holding the GIL) for DETECTBOT_TEST_SLOW_S seconds per image."""

    def __init__(self) -> None:
        self.seconds = float(os.environ.get("DETECTBOT_TEST_SLOW_S", "2"))

    def predict(self, image: RGBImage) -> list[Detection]:
        if image.shape[0] <= 64:  # the pool's warm-up image
            return []
        deadline = time.process_time() + self.seconds
        x = 0
        while time.process_time() < deadline:
            x = (x * 31 + 7) % 1_000_003
        return self._boxes(image)


class CrashOnPoison(_Base):
    """The inference process dies (as in a segfault) on a poison image; others are fine."""

    def predict(self, image: RGBImage) -> list[Detection]:
        if is_poison(image):
            os._exit(70)
        return self._boxes(image)


class KillWorkerOnPoison(_Base):
    """A poison image kills the whole worker process (parent of the inference process) with SIGKILL."""

    def predict(self, image: RGBImage) -> list[Detection]:
        if is_poison(image):
            os.kill(os.getppid(), signal.SIGKILL)
            os._exit(70)
        return self._boxes(image)


class Raising(_Base):
    """The model raises on every real image: a final failure for the job."""

    def predict(self, image: RGBImage) -> list[Detection]:
        if image.shape[0] <= 64:
            return []
        raise RuntimeError("model exploded")


def fixed(_spec: Any) -> Fixed:
    return Fixed()


def slow_cpu(_spec: Any) -> SlowCpu:
    return SlowCpu()


def crash_on_poison(_spec: Any) -> CrashOnPoison:
    return CrashOnPoison()


def kill_worker_on_poison(_spec: Any) -> KillWorkerOnPoison:
    return KillWorkerOnPoison()


def raising(_spec: Any) -> Raising:
    return Raising()
