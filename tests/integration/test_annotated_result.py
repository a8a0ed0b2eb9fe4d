"""What a slot makes of a photo stays as good as the plain way of making it, however the slot saves CPU.

``worker.inference.process`` decodes once (a large JPEG at a reduced scale), hands the detector a read-only view of
the pixels and draws on the decoded picture itself. The plain way decodes at full size into a fresh array, detects
on that, and draws on a copy (``load_image`` + ``annotate``). With the default model, NanoDet-g, on the sample
photos: the same detections and the same JPEG, byte for byte, where the photo is not reduced; where it is (a
4000x3000 photo), the same objects at full-size coordinates, and pixels within 38 dB of a Lanczos downscale of the
full-size decode with the same boxes drawn on it.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from benchmarks.labelled import iou
from worker.annotate import DRAFT_SIDE, MAX_SIDE, annotate, load_image
from worker.detections import Detection
from worker.inference import Job, process
from worker.onnx_detector import OnnxDetector

MAX_PIXELS = 25_000_000


@pytest.fixture(scope="module")
def detector(nanodet_model_path: Path) -> OnnxDetector:
    return OnnxDetector(nanodet_model_path, threads=1, name="offline-nanodet")  # as a default slot runs it


def twelve_megapixels(path: Path) -> bytes:
    """A sample photo scaled to 4000x3000 and saved as a camera would (quality 90)."""
    with Image.open(path) as image:
        big = image.convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    big.save(out, "JPEG", quality=90)
    return out.getvalue()


def psnr(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    """Peak signal-to-noise ratio of two 8-bit images in dB (higher is closer; identical: infinity)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def plain(detector: OnnxDetector, data: bytes) -> tuple[list[Detection], bytes]:
    """Full-size decode into a fresh array, detect, draw on a copy."""
    image = load_image(data, max_pixels=MAX_PIXELS)
    found = detector.predict(image)
    return found, annotate(image, found)


@pytest.mark.parametrize("name", ["bus.jpg", "zidane.jpg"])
def test_a_photo_that_is_not_reduced_gives_the_same_detections_and_the_same_jpeg(
    detector: OnnxDetector, sample_images: dict[str, Path], name: str
) -> None:
    data = sample_images[name].read_bytes()
    found, expected = plain(detector, data)
    result = process(detector, Job(data), MAX_PIXELS)
    by_confidence = sorted(found, key=lambda d: d.confidence, reverse=True)
    assert result.detections == [d.to_json() for d in by_confidence] and len(found) >= 4
    assert result.image == expected
    with Image.open(sample_images[name]) as original, Image.open(io.BytesIO(result.image)) as annotated:
        assert annotated.size == original.size == (result.width, result.height)


@pytest.mark.parametrize("name", ["bus.jpg", "zidane.jpg"])
def test_a_large_photo_keeps_its_objects_and_its_look(
    detector: OnnxDetector, sample_images: dict[str, Path], name: str
) -> None:
    data = twelve_megapixels(sample_images[name])
    full_size, _ = plain(detector, data)
    result = process(detector, Job(data), MAX_PIXELS)
    assert (result.width, result.height) == (4000, 3000)  # detections are in the photo's own pixels
    ours = [Detection(d["class_id"], d["label"], d["confidence"], tuple(d["box"])) for d in result.detections]
    assert Counter(d.label for d in ours) == Counter(d.label for d in full_size) and len(ours) >= 3
    for detection in full_size:
        twin = max((d for d in ours if d.label == detection.label), key=lambda d: iou(d.box, detection.box))
        assert iou(twin.box, detection.box) >= 0.5, detection
        assert twin.confidence == pytest.approx(detection.confidence, abs=0.05), detection

    with Image.open(io.BytesIO(result.image)) as annotated:
        drawn = np.asarray(annotated.convert("RGB"))
    height, width = drawn.shape[:2]
    assert (width, height) == (2000, 1500) and DRAFT_SIDE <= width <= MAX_SIDE  # decoded at 1/2, drawn as decoded
    shrunk = Image.fromarray(load_image(data, max_pixels=MAX_PIXELS)).resize((width, height), Image.Resampling.LANCZOS)
    same_boxes = [
        Detection(d.class_id, d.label, d.confidence, (d.box[0] / 2, d.box[1] / 2, d.box[2] / 2, d.box[3] / 2))
        for d in ours
    ]
    with Image.open(io.BytesIO(annotate(np.asarray(shrunk), same_boxes))) as reference:
        assert psnr(drawn, np.asarray(reference.convert("RGB"))) >= 38.0
