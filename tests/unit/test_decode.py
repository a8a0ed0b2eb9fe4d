"""The worker decodes within bounded work: hostile structures are refused before a decoder sees them, and a large
JPEG is decoded at a reduced scale with its detections mapped back to full-size pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.detectors import Fixed
from tests.hostile import comment_flood, scan_bomb
from worker.annotate import DRAFT_SIDE, decode, load_image
from worker.errors import BadImage
from worker.inference import Job, _detect, _state

MP25 = 25_000_000


def jpeg(size: tuple[int, int], **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (90, 140, 30)).save(buffer, "JPEG", quality=80, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("hostile", [scan_bomb(2_000), comment_flood(10_000)], ids=["scan bomb", "comment flood"])
def test_hostile_structures_are_refused_before_decoding(hostile: bytes) -> None:
    with pytest.raises(BadImage, match="very slow to decode"):
        decode(hostile, max_pixels=MP25)


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_and_a_small_one_in_full() -> None:
    large, scale = decode(jpeg((4000, 3000)), max_pixels=MP25)
    assert large.shape == (1500, 2000, 3) and scale == 2.0
    huge, huge_scale = decode(jpeg((6000, 4000)), max_pixels=MP25)
    assert max(huge.shape) >= DRAFT_SIDE and huge_scale == 4.0
    photo, scale = decode(jpeg((1280, 960)), max_pixels=MP25)
    assert photo.shape == (960, 1280, 3) and scale == 1.0
    assert load_image(jpeg((4000, 3000)), max_pixels=MP25).shape == (3000, 4000, 3)  # full size when asked


def test_a_reduced_decode_looks_like_the_full_one() -> None:
    gradient = np.linspace(0, 255, 4000, dtype=np.uint8)[None, :, None].repeat(3000, 0).repeat(3, 2)
    buffer = io.BytesIO()
    Image.fromarray(gradient).save(buffer, "JPEG", quality=90)
    reduced, scale = decode(buffer.getvalue(), max_pixels=MP25)
    assert scale == 2.0
    full = load_image(buffer.getvalue(), max_pixels=MP25)
    shrunk = np.asarray(Image.fromarray(full).resize((reduced.shape[1], reduced.shape[0]), Image.Resampling.BOX))
    assert np.abs(shrunk.astype(int) - reduced.astype(int)).mean() < 2.0


def test_detections_of_a_reduced_decode_are_in_full_size_pixels() -> None:
    _state["detector"] = Fixed()  # a person and a bus at fixed fractions of the image
    try:
        small = _detect(Job(jpeg((1000, 750))), MP25)
        large = _detect(Job(jpeg((4000, 3000))), MP25)
    finally:
        _state.clear()
    assert (large.width, large.height) == (4000, 3000)
    for near, far in zip(small.detections, large.detections, strict=True):
        assert near["label"] == far["label"]
        assert far["box"] == pytest.approx([4 * v for v in near["box"]], rel=0.01, abs=4)
