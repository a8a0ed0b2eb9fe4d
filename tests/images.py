"""Photos for tests: the samples that ship with ultralytics, and small generated ones."""

from __future__ import annotations

import io
import itertools
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def ultralytics_asset(name: str) -> Path:
    """``bus.jpg`` / ``zidane.jpg`` from the installed ultralytics package (found without importing it), else from
    its wheel, downloaded once into the tests' cache (``detectbot.samples``)."""
    from detectbot.samples import sample_photos
    from tests.conftest_models import cache_dir

    (path,) = [p for p in sample_photos(cache_dir()) if p.name == name]
    assert path.is_file(), f"{path} is missing"
    return path


_serial = itertools.count(1)


def _unique_colour() -> tuple[int, int, int]:
    """Every generated photo differs, so the gateway's result cache never answers a test by accident."""
    n = next(_serial)
    return (n * 37) % 256, (n * 91) % 256, (n // 256 * 53 + 17) % 256


def jpeg(width: int = 320, height: int = 240, colour: tuple[int, int, int] | None = None, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour or _unique_colour()).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def png(width: int = 320, height: int = 240, colour: tuple[int, int, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour or _unique_colour()).save(buffer, "PNG")
    return buffer.getvalue()


def poison_png(width: int = 96, height: int = 96) -> bytes:
    """A PNG whose top-left pixel marks it as poison for ``tests.detectors`` (PNG keeps the pixel exact)."""
    from tests.detectors import POISON_RGB

    image = Image.new("RGB", (width, height), _unique_colour())
    image.putpixel((0, 0), POISON_RGB)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def rgb(path: Path) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """A photo on disk as the RGB array a detector takes."""
    with Image.open(path) as image:
        return np.array(image.convert("RGB"))


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two xyxy boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
