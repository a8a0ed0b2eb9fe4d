"""The objects of a photo, cut out: each detection's box from the stored original (not the annotated image), with a
small margin, largest first, at most ``MAX_CROPS``; boxes too small to see are left out and counted.

Cutting decodes the original at full size, so it runs in a thread, one photo at a time per gateway
(:class:`Cutter`), and only when someone asks (the "Objects" button, ``GET /v1/jobs/{id}/crops``).
"""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageOps

MAX_CROPS = 10  # Telegram's album limit, and Discord's attachments per message
MIN_SIDE = 32  # px: a box smaller than this on a side shows nothing anyone can see
MARGIN = 0.08  # of the box's size, on each side
MAX_SIDE = 1280  # a crop larger than this is scaled down (a chat shows no more)


@dataclass(frozen=True, slots=True)
class Crop:
    label: str
    confidence: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the original's pixels
    jpeg: bytes


@dataclass(frozen=True, slots=True)
class Crops:
    items: list[Crop]
    too_small: int  # boxes under MIN_SIDE px on a side
    more: int  # boxes beyond MAX_CROPS (the smallest ones)


def cut(
    image: bytes, detections: Sequence[Mapping[str, Any]], *, limit: int = MAX_CROPS, min_side: int = MIN_SIDE
) -> Crops:
    """Cut each detection out of ``image`` (EXIF-rotated, as the worker saw it); largest first."""

    def area(d: Mapping[str, Any]) -> float:
        x1, y1, x2, y2 = d["box"]
        return float((x2 - x1) * (y2 - y1))

    big = [d for d in detections if _side(d["box"]) >= min_side]
    chosen = sorted(big, key=area, reverse=True)[:limit]
    items: list[Crop] = []
    if chosen:
        with Image.open(io.BytesIO(image)) as opened:
            ImageOps.exif_transpose(opened, in_place=True)
            picture = opened.convert("RGB")
        for detection in chosen:
            x1, y1, x2, y2 = (float(v) for v in detection["box"])
            pad_x, pad_y = (x2 - x1) * MARGIN, (y2 - y1) * MARGIN
            left, top = max(0, int(x1 - pad_x)), max(0, int(y1 - pad_y))
            right, bottom = min(picture.width, int(x2 + pad_x + 0.999)), min(picture.height, int(y2 + pad_y + 0.999))
            if right - left < 1 or bottom - top < 1:
                continue
            piece = picture.crop((left, top, right, bottom))
            piece.thumbnail((MAX_SIDE, MAX_SIDE))
            out = io.BytesIO()
            piece.save(out, "JPEG", quality=90)
            items.append(
                Crop(str(detection["label"]), float(detection["confidence"]), (x1, y1, x2, y2), out.getvalue())
            )
    return Crops(items, too_small=len(detections) - len(big), more=max(0, len(big) - limit))


def _side(box: Sequence[float]) -> float:
    x1, y1, x2, y2 = box
    return float(min(x2 - x1, y2 - y1))


def archive(index: Mapping[str, Any], crops: Crops) -> bytes:
    """A ZIP of the crops (``01-bus.jpg`` …) and ``index.json`` (the same order, with each file's name)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zipped:  # JPEGs do not compress
        zipped.writestr("index.json", json.dumps(index, ensure_ascii=False, indent=1))
        for name, crop in zip(file_names(crops), crops.items, strict=True):
            zipped.writestr(name, crop.jpeg)
    return out.getvalue()


def file_names(crops: Crops) -> list[str]:
    return [f"{n:02d}-{_safe(crop.label)}.jpg" for n, crop in enumerate(crops.items, start=1)]


def _safe(label: str) -> str:
    return "".join(c if c.isascii() and c.isalnum() else "-" for c in label)[:40] or "object"


class Cutter:
    """Cuts one photo at a time in a thread: a full-size decode is CPU work the event loop must not do, and a
    gateway need not do many at once (a press of "Objects" is rare). The last few photos' crops are kept, so the
    same button pressed again (or by an impatient person, many times) costs nothing."""

    def __init__(self, at_once: int = 1, keep: int = 8) -> None:
        self._slots = asyncio.Semaphore(at_once)
        self._kept: OrderedDict[str, Crops] = OrderedDict()
        self._keep = keep

    async def cut(self, job_id: str, image: bytes, detections: Sequence[Mapping[str, Any]]) -> Crops:
        async with self._slots:
            if (kept := self._kept.get(job_id)) is not None:
                self._kept.move_to_end(job_id)
                return kept
            found = await asyncio.to_thread(cut, image, detections)
            self._kept[job_id] = found
            while len(self._kept) > self._keep:
                self._kept.popitem(last=False)
            return found

    def clear(self) -> None:
        """Photos were deleted at someone's request: nothing cut from them stays in memory either."""
        self._kept.clear()
