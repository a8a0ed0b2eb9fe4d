"""The structure check refuses photos whose decoding costs out of proportion to their size, and only those."""

from __future__ import annotations

import io
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from queue_gateway.public import imagecheck
from queue_gateway.public.imagecheck import ImageProblem, inspect
from tests.hostile import comment_flood, fill_flood, junk_before_frame, plain_jpeg, png_chunk_flood, scan_bomb

MP25 = 25_000_000


def encoded(kind: str, size: tuple[int, int] = (320, 240), mode: str = "RGB", **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (30, 60, 90) if mode == "RGB" else 128).save(buffer, kind, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (encoded("JPEG"), ("JPEG", 320, 240, 1)),
        (encoded("JPEG", progressive=True), ("JPEG", 320, 240, 10)),
        (encoded("JPEG", (50, 70), mode="L", progressive=True), ("JPEG", 50, 70, 6)),
        (encoded("PNG", (33, 17)), ("PNG", 33, 17, 1)),
        (encoded("WEBP", (101, 55)), ("WEBP", 101, 55, 1)),
        (encoded("WEBP", (101, 55), lossless=True), ("WEBP", 101, 55, 1)),
    ],
)
def test_ordinary_photos_pass_with_their_format_size_and_scans(
    data: bytes, expected: tuple[str, int, int, int]
) -> None:
    found = inspect(data, max_pixels=MP25)
    assert (found.format, found.width, found.height, found.scans) == expected


def test_a_camera_jpeg_with_exif_thumbnail_and_icc_profile_passes() -> None:
    thumbnail = encoded("JPEG", (160, 120))
    exif = Image.Exif()
    exif[0x010E] = "a photo"
    buffer = io.BytesIO()
    profile = b"\x00" * 200_000  # a large ICC profile is split over several APP2 segments
    Image.new("RGB", (1280, 960), (5, 6, 7)).save(buffer, "JPEG", exif=exif.tobytes() + thumbnail, icc_profile=profile)
    found = inspect(buffer.getvalue() + b"trailing bytes, as in motion photos", max_pixels=MP25)
    assert (found.width, found.height) == (1280, 960)


@pytest.mark.parametrize("scans", [101, 2_000, 20_000])
def test_a_scan_bomb_is_refused_in_a_blink_whatever_its_size(scans: int) -> None:
    bomb = scan_bomb(scans)
    started = time.process_time()
    with pytest.raises(ImageProblem) as refused:
        inspect(bomb, max_pixels=MP25)
    assert refused.value.code == "too_complex"
    assert time.process_time() - started < 0.05  # a budget, not a benchmark: Pillow would spend seconds to minutes


def test_as_many_scans_as_the_limit_still_pass() -> None:
    found = inspect(scan_bomb(imagecheck.MAX_JPEG_SCANS, (640, 480)), max_pixels=MP25)
    assert found.scans == imagecheck.MAX_JPEG_SCANS and found.progressive


@pytest.mark.parametrize(
    "hostile",
    [comment_flood(100_000), junk_before_frame(100_000), png_chunk_flood(60_000)],
    ids=["a hundred thousand empty comments", "100 KB of junk before the frame", "sixty thousand PNG chunks"],
)
def test_floods_of_segments_chunks_or_junk_are_too_complex(hostile: bytes) -> None:
    with pytest.raises(ImageProblem) as refused:
        inspect(hostile, max_pixels=MP25)
    assert refused.value.code == "too_complex"


@pytest.mark.parametrize("after_scan", [False, True], ids=["before the frame", "inside a scan"])
def test_a_megabyte_of_fill_bytes_is_refused_at_once(after_scan: bool) -> None:
    """A flood of 0xFF: refused in one linear pass (a quadratic search would hold this test for hours)."""
    with pytest.raises(ImageProblem) as refused:
        inspect(fill_flood(1_000_000, after_scan=after_scan), max_pixels=MP25)
    assert refused.value.code in ("too_complex", "corrupt")


def test_a_little_of_each_is_fine() -> None:
    for data in (comment_flood(20), junk_before_frame(10), png_chunk_flood(30)):
        inspect(data, max_pixels=MP25)
        Image.open(io.BytesIO(data)).load()  # and the decoder agrees it is a photo


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "not_an_image"),
        (b"hello", "not_an_image"),
        (b"GIF89a" + b"\x00" * 20, "unsupported_format"),
        (plain_jpeg()[:-2], "corrupt"),
        (plain_jpeg()[:200], "corrupt"),
        (encoded("PNG")[:-12], "corrupt"),
        (encoded("WEBP")[:-4], "corrupt"),
        (encoded("JPEG", (6000, 5000)), "too_many_pixels"),
    ],
)
def test_what_is_refused_says_why(data: bytes, code: str) -> None:
    with pytest.raises(ImageProblem) as refused:
        inspect(data, max_pixels=MP25)
    assert refused.value.code == code


@given(
    st.sampled_from([plain_jpeg(), encoded("PNG"), encoded("WEBP")]), st.integers(min_value=0), st.binary(max_size=64)
)
@settings(max_examples=300)
def test_damaged_files_get_a_problem_never_another_exception(good: bytes, cut: int, noise: bytes) -> None:
    damaged = good[: cut % len(good)] + noise
    try:
        inspect(damaged, max_pixels=MP25)
    except ImageProblem as exc:
        assert exc.code in ("corrupt", "too_complex", "not_an_image", "unsupported_format", "too_many_pixels")
