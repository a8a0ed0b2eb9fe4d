"""A small labelled set made offline: 9 photos from packages, boxes labelled by hand, and 5 views of each.

The photos come from packages a registry carries; none is copied into this repository:
- ``bus.jpg`` and ``zidane.jpg``: ultralytics' sample photos (AGPL-3.0), from the installed package or its
  wheel on PyPI (``detectbot.samples``);
- ``grace_hopper.jpg``: matplotlib's sample data (US Navy photo, public domain), installed with detectbot;
- ``astronaut.png`` (NASA) and ``clock_motion.png`` (public domain), ``camera.png``, ``chelsea.png``,
  ``coffee.png`` and ``horse.png`` (a silhouette; CC0): scikit-image's data folder, taken from its wheel on PyPI
  (13.7 MB, downloaded once, not installed).

The boxes (x1, y1, x2, y2 in the photo's pixels) were drawn by hand over a 50-px grid for every object of a COCO
class that a person would name, small or partly hidden ones included (the bicycle behind the balcony railing in
bus.jpg). Each photo is also seen flipped, at half size and through two crops; a box that a crop leaves less than
40 % of becomes an "ignore" region (a detection there counts neither way).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

Box = tuple[float, float, float, float]
Outcome = tuple[float, str, str]  # confidence, class, "tp" | "fp" | "ignored"
SKIMAGE = ("scikit-image", "0.26.0")
SKIMAGE_PHOTOS = ("astronaut.png", "camera.png", "chelsea.png", "coffee.png", "clock_motion.png", "horse.png")

# photo -> [(class, box)], labelled by hand
LABELS: dict[str, list[tuple[str, Box]]] = {
    "bus.jpg": [
        ("person", (50, 398, 245, 905)),
        ("person", (222, 405, 345, 860)),
        ("person", (668, 395, 810, 880)),
        ("person", (0, 550, 78, 875)),
        ("bus", (15, 228, 805, 740)),
        ("bicycle", (655, 10, 760, 75)),
    ],
    "zidane.jpg": [
        ("person", (122, 200, 1150, 720)),  # Zidane, his arm pointing across Ancelotti included
        ("person", (748, 42, 1100, 720)),
        ("tie", (440, 435, 492, 720)),
        ("tie", (985, 305, 1040, 430)),
    ],
    "grace_hopper.jpg": [("person", (10, 20, 512, 600)), ("tie", (215, 405, 300, 525))],
    "astronaut.png": [("person", (20, 15, 365, 512))],
    "camera.png": [("person", (0, 62, 332, 512))],
    "chelsea.png": [("cat", (0, 0, 451, 300))],
    "coffee.png": [
        ("cup", (172, 18, 410, 290)),
        ("spoon", (325, 65, 425, 325)),
        ("dining table", (0, 0, 600, 400)),
    ],
    "clock_motion.png": [("clock", (140, 95, 285, 215))],
    "horse.png": [("horse", (18, 8, 390, 312))],
}


@dataclass
class Sample:
    """One view of a labelled photo."""

    name: str
    image: np.ndarray[Any, np.dtype[np.uint8]]
    boxes: list[tuple[str, Box]]
    ignore: list[tuple[str, Box]] = field(default_factory=list)


def photos(cache: Path) -> dict[str, Path]:
    """The nine photos, fetched into ``cache`` where they are not installed."""
    from detectbot.samples import sample_photos

    bus, zidane = sample_photos(cache)
    found = {"bus.jpg": bus, "zidane.jpg": zidane, "grace_hopper.jpg": _matplotlib_sample("grace_hopper.jpg")}
    folder = _skimage_data(cache)
    found |= {name: folder / name for name in SKIMAGE_PHOTOS}
    return found


def _matplotlib_sample(name: str) -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / name


def _skimage_data(cache: Path) -> Path:
    """scikit-image's bundled photos, from its wheel (downloaded once with pip, never installed)."""
    folder = cache / f"{SKIMAGE[0]}-{SKIMAGE[1]}-data"
    names = SKIMAGE_PHOTOS
    if all((folder / n).is_file() for n in names):
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--no-input",
             "--disable-pip-version-check", "--progress-bar", "off", f"{SKIMAGE[0]}=={SKIMAGE[1]}", "-d", tmp],
            check=True, capture_output=True, timeout=600,
        )  # fmt: skip
        (wheel,) = Path(tmp).glob("scikit_image-*.whl")
        partial = Path(tmp) / "data"
        partial.mkdir()
        with zipfile.ZipFile(wheel) as archive:
            for name in names:
                (partial / name).write_bytes(archive.read(f"skimage/data/{name}"))
        partial.replace(folder)
    return folder


def samples(cache: Path) -> list[Sample]:
    """Every view of every labelled photo (45 in all), in a fixed order."""
    out: list[Sample] = []
    for name, path in photos(cache).items():
        image = np.asarray(Image.open(path).convert("RGB"))
        out += list(_views(name, image, LABELS[name]))
    return out


def _views(name: str, image: np.ndarray[Any, Any], boxes: list[tuple[str, Box]]) -> Iterator[Sample]:
    """The photo as it is, flipped left-right, at half size, its centre 70 % and its top-left 60 %."""
    h, w = image.shape[:2]
    yield Sample(name, image, boxes)
    flipped = [(c, (w - b[2], b[1], w - b[0], b[3])) for c, b in boxes]
    yield Sample(f"{name} flipped", np.ascontiguousarray(image[:, ::-1]), flipped)
    half = np.asarray(Image.fromarray(image).resize((w // 2, h // 2), Image.Resampling.BILINEAR))
    sx, sy = (w // 2) / w, (h // 2) / h
    yield Sample(f"{name} half", half, [(c, (b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy)) for c, b in boxes])
    yield _crop(
        f"{name} centre 70%", image, boxes, (round(w * 0.15), round(h * 0.15), round(w * 0.85), round(h * 0.85))
    )
    yield _crop(f"{name} top-left 60%", image, boxes, (0, 0, round(w * 0.6), round(h * 0.6)))


def _crop(
    name: str, image: np.ndarray[Any, Any], boxes: list[tuple[str, Box]], area: tuple[int, int, int, int]
) -> Sample:
    """A crop; boxes clipped to it, those left with under 40 % of their area become ignore regions."""
    x0, y0, x1, y1 = area
    sample = Sample(name, np.ascontiguousarray(image[y0:y1, x0:x1]), [])
    for cls, b in boxes:
        clipped = (max(b[0], x0) - x0, max(b[1], y0) - y0, min(b[2], x1) - x0, min(b[3], y1) - y0)
        kept = max(clipped[2] - clipped[0], 0) * max(clipped[3] - clipped[1], 0)
        if kept <= 0:
            continue
        whole = (b[2] - b[0]) * (b[3] - b[1])
        (sample.boxes if kept >= 0.4 * whole else sample.ignore).append((cls, clipped))
    return sample


# --- scoring -----------------------------------------------------------------------------------------------


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two xyxy boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(sample: Sample, detections: list[tuple[str, float, Box]], min_iou: float = 0.5) -> list[Outcome]:
    """Each detection, best first, as (confidence, class, "tp" | "fp" | "ignored"): greedy matching at
    ``min_iou``, same class, one detection per labelled box."""
    unmatched = list(range(len(sample.boxes)))
    out: list[Outcome] = []
    for cls, conf, box in sorted(detections, key=lambda d: -d[1]):
        scored = [(iou(box, sample.boxes[i][1]), i) for i in unmatched if sample.boxes[i][0] == cls]
        best = max(scored, default=(0.0, -1))
        if best[0] >= min_iou:
            unmatched.remove(best[1])
            out.append((conf, cls, "tp"))
        elif any(c == cls and iou(box, b) >= min_iou for c, b in sample.ignore):
            out.append((conf, cls, "ignored"))
        else:
            out.append((conf, cls, "fp"))
    return out


def precision_recall(outcomes: list[Outcome], labelled: int, conf: float) -> dict[str, Any]:
    """Precision and recall of the detections at or above ``conf``."""
    tp = sum(1 for c, _, o in outcomes if c >= conf and o == "tp")
    fp = sum(1 for c, _, o in outcomes if c >= conf and o == "fp")
    return {
        "conf": conf,
        "tp": tp,
        "fp": fp,
        "fn": labelled - tp,
        "precision": round(tp / (tp + fp), 3) if tp + fp else None,
        "recall": round(tp / labelled, 3) if labelled else None,
    }


def average_precision(outcomes: list[Outcome], labelled: int) -> float:
    """AP at IoU 0.5 over all classes pooled (all-point interpolation, as VOC 2010+)."""
    ranked = [o for _, _, o in sorted(outcomes, key=lambda x: -x[0]) if o != "ignored"]
    tp = np.cumsum([o == "tp" for o in ranked])
    fp = np.cumsum([o == "fp" for o in ranked])
    if not ranked or not labelled:
        return 0.0
    recall = np.concatenate([[0.0], tp / labelled, [tp[-1] / labelled]])
    precision = np.concatenate([[1.0], tp / np.maximum(tp + fp, 1), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum((recall[1:] - recall[:-1]) * precision[1:]))
