"""A detector on ultralytics ``YOLO`` (.pt, .yaml, .onnx, OpenVINO folders); imports torch, so ~0.7 GB RSS."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from worker.detections import Detection, RGBImage, detections_from

log = logging.getLogger(__name__)


class UltralyticsDetector:
    """ultralytics ``YOLO`` behind the ``Detector`` protocol. Not thread-safe: one instance per thread."""

    def __init__(
        self,
        model: str,
        *,
        conf: float = 0.25,
        iou: float = 0.45,
        imgsz: int | None = None,
        threads: int,
        device: str = "cpu",
        max_det: int = 300,
        name: str | None = None,
    ) -> None:
        import torch
        from ultralytics.models.yolo.model import YOLO

        torch.set_num_threads(threads)  # process-wide: torch has one intra-op pool
        self._model: Any = YOLO(model, task="detect")
        self._kwargs: dict[str, Any] = {
            "conf": conf, "iou": iou, "device": device, "max_det": max_det, "verbose": False,
        }  # fmt: skip
        if imgsz is not None:
            self._kwargs["imgsz"] = imgsz
        self._name = name or Path(model).stem
        self._names = {int(k): str(v) for k, v in self._model.names.items()}
        log.info("loaded %s with ultralytics (%s classes, device %s)", model, len(self._names), device)

    @property
    def name(self) -> str:
        """The model name given at construction (default: the spec's stem)."""
        return self._name

    @property
    def names(self) -> Mapping[int, str]:
        """Class id → label."""
        return self._names

    @property
    def conf(self) -> float:
        """The confidence threshold in use."""
        return float(self._kwargs["conf"])

    def use_threshold(self, conf: float) -> float:
        """Keep detections down to ``conf`` from now on; return the threshold before."""
        before, self._kwargs["conf"] = float(self._kwargs["conf"]), conf
        return before

    def predict(self, image: RGBImage) -> list[Detection]:
        """Detect objects in one RGB image. Blocking; call it from an executor."""
        return self.predict_batch([image])[0]

    def predict_batch(self, images: list[RGBImage]) -> list[list[Detection]]:
        """Detect objects in several RGB images in one ultralytics call."""
        if self._model is None:
            raise RuntimeError(f"detector {self._name} is closed")
        bgr = [np.ascontiguousarray(image[..., ::-1]) for image in images]  # ultralytics takes BGR arrays
        results = self._model.predict(bgr, **self._kwargs)
        return [self._detections(result) for result in results]

    def _detections(self, result: Any) -> list[Detection]:
        """Convert one ultralytics ``Results`` into Detections."""
        boxes = result.boxes
        xyxy = boxes.xyxy.cpu().numpy().astype(float)
        confs = boxes.conf.cpu().numpy().astype(float)
        classes = boxes.cls.cpu().numpy().astype(int)
        return detections_from(xyxy, confs, classes, self._names)

    def close(self) -> None:
        """Drop the model."""
        self._model = None
