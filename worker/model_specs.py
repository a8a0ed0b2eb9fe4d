"""Model names and places: the built-in specs, where model files live, and the sentence for an unobtainable one."""

from __future__ import annotations

from pathlib import Path

OFFLINE_SPEC = "offline-coco"
ONLINE_DEFAULT_SPEC = "yolo11n.pt"
OFFLINE_IMGSZ = 416


def models_dir(data_dir: Path) -> Path:
    """Where model files live: the offline build, downloaded hub weights, exports."""
    return data_dir / "models"


def offline_message(spec: str) -> str:
    """The one sentence for a hub model that is neither here nor downloadable."""
    return (
        f"model {spec!r} is not on this machine and cannot be downloaded (offline); "
        f"set DETECTBOT_MODEL={OFFLINE_SPEC} or a local .pt/.onnx path"
    )
