"""What a detector returns, and the small protocol every detector backend implements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

RGBImage = npt.NDArray[np.uint8]
"""An H x W x 3 RGB image, EXIF orientation already applied."""


@dataclass(frozen=True, slots=True)
class Detection:
    """One box found in an image, in the image's own pixel coordinates."""

    class_id: int
    label: str
    confidence: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2

    def to_json(self) -> dict[str, Any]:
        return {
            "class_id": self.class_id,
            "label": self.label,
            "confidence": round(self.confidence, 4),
            "box": [round(v, 1) for v in self.box],
        }


def detections_from(
    boxes: npt.NDArray[Any], scores: npt.NDArray[Any], classes: npt.NDArray[Any], names: Mapping[int, str]
) -> list[Detection]:
    """Detections from parallel arrays: xyxy boxes (N x 4), scores (N) and class ids (N)."""
    return [
        Detection(
            class_id=int(c),
            label=names.get(int(c), str(int(c))),
            confidence=float(s),
            box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
        )
        for b, s, c in zip(boxes, scores, classes, strict=True)
    ]


class Detector(Protocol):
    """A loaded model. Not thread-safe: use one instance per executor thread."""

    @property
    def name(self) -> str:
        """A short model name for logs, metrics and results (e.g. ``offline-coco``)."""
        ...

    @property
    def names(self) -> Mapping[int, str]:
        """Class id → label."""
        ...

    def predict(self, image: RGBImage) -> list[Detection]:
        """Detect objects in one RGB image. Blocking; call it from an executor."""
        ...

    def close(self) -> None:
        """Release the runtime's resources."""
        ...


@runtime_checkable
class Thresholded(Protocol):
    """A detector with a confidence threshold of its own (the model's default), which a job may lower for itself."""

    @property
    def conf(self) -> float: ...

    def use_threshold(self, conf: float) -> float:
        """Keep detections down to ``conf`` from now on; return the threshold before."""
        ...
