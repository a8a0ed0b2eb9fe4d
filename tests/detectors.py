"""Detectors of our own ``Detector`` protocol for tests that inject failures (``DETECTBOT_MODEL=py:…``).

Each factory takes the worker's ``DetectorSpec``; knobs come from environment variables that the test sets
before the worker's inference processes start.
"""

from __future__ import annotations

import os
import signal
import threading
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


class Napping(_Base):
    """Finds one person and one bus after a nap of DETECTBOT_TEST_NAP_S seconds (no CPU): a job stays in hand
    long enough for a crash test to kill its worker mid-job."""

    def __init__(self) -> None:
        self.seconds = float(os.environ.get("DETECTBOT_TEST_NAP_S", "0.3"))

    def predict(self, image: RGBImage) -> list[Detection]:
        if image.shape[0] > 64:  # not the pool's warm-up image
            time.sleep(self.seconds)  # the inference process stands for a model at work
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


def napping(_spec: Any) -> Napping:
    return Napping()


def slow_cpu(_spec: Any) -> SlowCpu:
    return SlowCpu()


def crash_on_poison(_spec: Any) -> CrashOnPoison:
    return CrashOnPoison()


def kill_worker_on_poison(_spec: Any) -> KillWorkerOnPoison:
    return KillWorkerOnPoison()


def raising(_spec: Any) -> Raising:
    return Raising()


class HangOnPoison(_Base):
    """The model hangs for good on a poison image (a deadlock, a runaway loop); others are fine."""

    def predict(self, image: RGBImage) -> list[Detection]:
        if is_poison(image):
            threading.Event().wait()  # never returns: the worker's deadline must end this process
        return self._boxes(image)


def hang_on_poison(_spec: Any) -> HangOnPoison:
    return HangOnPoison()


# --- a crowd with known confidences, and a gate the test opens one photo at a time ---------------------

CROWD_PERSON_CONFIDENCES = (0.92, 0.81, 0.64, 0.58, 0.33, 0.31, 0.29, 0.27, 0.26, 0.25)
CROWD_OTHERS = (("car", 0.95), ("dog", 0.65))
"""What :class:`Crowd` finds besides the persons: one of each, with these confidences."""


class Crowd(_Base):
    """One person per 100 px of the image's width (up to ten; confidences ``CROWD_PERSON_CONFIDENCES`` in
    turn), and one car (0.95) and one dog (0.65): a 500 px wide photo has 5 persons, 3 of them at ≥ 0.6."""

    names: Mapping[int, str] = {0: "person", 2: "car", 16: "dog"}

    def predict(self, image: RGBImage) -> list[Detection]:
        h, w = image.shape[:2]
        persons = [
            Detection(0, "person", confidence, (i * 100 + 10.0, h * 0.1, i * 100 + 90.0, h * 0.6))
            for i, confidence in enumerate(CROWD_PERSON_CONFIDENCES[: w // 100])
        ]
        (car, car_conf), (dog, dog_conf) = CROWD_OTHERS
        return [
            *persons,
            Detection(2, car, car_conf, (w * 0.05, h * 0.65, w * 0.45, h * 0.95)),
            Detection(16, dog, dog_conf, (w * 0.55, h * 0.65, w * 0.95, h * 0.95)),
        ]


def crowd(_spec: Any) -> Crowd:
    return Crowd()


class Street(_Base):
    """Four persons and a bus, the bus the largest box: the "Objects" button's album, largest first."""

    def predict(self, image: RGBImage) -> list[Detection]:
        h, w = image.shape[:2]
        return [
            Detection(0, "person", 0.91, (w * 0.05, h * 0.30, w * 0.20, h * 0.95)),
            Detection(0, "person", 0.84, (w * 0.22, h * 0.35, w * 0.34, h * 0.90)),
            Detection(5, "bus", 0.88, (w * 0.35, h * 0.10, w * 0.98, h * 0.85)),
            Detection(0, "person", 0.66, (w * 0.01, h * 0.50, w * 0.10, h * 0.90)),
            Detection(0, "person", 0.52, (w * 0.85, h * 0.60, w * 0.93, h * 0.98)),
        ]


def street(_spec: Any) -> Street:
    return Street()


GATE_ENV = "DETECTBOT_TEST_GATE"


class Gated(_Base):
    """Holds each photo until the test lets it through: one byte on the named pipe at $DETECTBOT_TEST_GATE per
    photo (see :class:`Gate`). Once the test's end of the pipe is closed, every photo passes at once."""

    def __init__(self) -> None:
        self._path = os.environ[GATE_ENV]
        self._pipe: int | None = None

    def predict(self, image: RGBImage) -> list[Detection]:
        if image.shape[0] > 64:  # not the pool's warm-up image
            if self._pipe is None:  # opened without blocking; with no writer left, a read is EOF at once
                self._pipe = os.open(self._path, os.O_RDONLY | os.O_NONBLOCK)
                os.set_blocking(self._pipe, True)
            os.read(self._pipe, 1)  # waits for the test's byte (b"" when the gate is gone)
        return self._boxes(image)

    def close(self) -> None:
        if self._pipe is not None:
            os.close(self._pipe)


def gated(_spec: Any) -> Gated:
    return Gated()


class Gate:
    """The test's end of the pipe :class:`Gated` waits on. ``release(n)`` lets ``n`` photos through;
    ``close()`` lets every photo through from then on (do it before the worker stops)."""

    def __init__(self, path: str) -> None:
        os.mkfifo(path)
        self.path = path
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_NONBLOCK)  # RDWR: opening never blocks

    def release(self, count: int = 1) -> None:
        assert self._fd is not None, "the gate is closed: everything passes already"
        os.write(self._fd, b"." * count)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Thresholding(_Base):
    """A model with a threshold of its own (0.35, as NanoDet's), keeping only what reaches it: a person at 0.9, a
    bus at 0.5 and a dog at 0.2 are there, the dog only for a job that asks for less than 0.35."""

    names: Mapping[int, str] = {0: "person", 5: "bus", 16: "dog"}

    def __init__(self) -> None:
        self._conf = 0.35

    @property
    def conf(self) -> float:
        return self._conf

    def use_threshold(self, conf: float) -> float:
        before, self._conf = self._conf, conf
        return before

    def predict(self, image: RGBImage) -> list[Detection]:
        h, w = image.shape[:2]
        found = [
            Detection(0, "person", 0.9, (w * 0.1, h * 0.1, w * 0.4, h * 0.9)),
            Detection(5, "bus", 0.5, (w * 0.5, h * 0.2, w * 0.95, h * 0.8)),
            Detection(16, "dog", 0.2, (w * 0.4, h * 0.6, w * 0.6, h * 0.9)),
        ]
        return [d for d in found if d.confidence >= self._conf]


def thresholding(_spec: Any) -> Thresholding:
    return Thresholding()


OFFLINE_MODEL_ENV = "DETECTBOT_TEST_OFFLINE_MODEL"


class SlowOffline:
    """A real offline model (the ONNX file named by DETECTBOT_TEST_OFFLINE_MODEL) that naps DETECTBOT_TEST_NAP_S
    before each image: its detections are the model's own, and a clip takes long enough for its chat to see the
    worker's progress ("frame 12 of 30")."""

    def __init__(self, spec: Any) -> None:
        from worker.model_loader import load_detector

        self._model = load_detector(
            os.environ[OFFLINE_MODEL_ENV], data_dir=spec.data_dir, conf=spec.conf, iou=spec.iou, imgsz=spec.imgsz,
            threads=spec.threads, allow_download=False,
        )  # fmt: skip
        self.name = self._model.name
        self.names = self._model.names
        self.seconds = float(os.environ.get("DETECTBOT_TEST_NAP_S", "0.1"))

    def predict(self, image: RGBImage) -> list[Detection]:
        if image.shape[0] > 64:  # not the pool's warm-up image
            time.sleep(self.seconds)
        return self._model.predict(image)

    def close(self) -> None:
        self._model.close()


def slow_offline(spec: Any) -> SlowOffline:
    return SlowOffline(spec)
