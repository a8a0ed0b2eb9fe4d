"""Our own drawing: readable labels in any script, EXIF orientation, size and metadata limits."""

from __future__ import annotations

import io
import os
import struct
import zlib
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from worker.annotate import (
    BadImage,
    annotate,
    class_color,
    line_width_and_font_size,
    load_image,
)
from worker.detections import Detection
from worker.offline import font_path, prepare_offline_env

Array = np.ndarray[Any, np.dtype[np.uint8]]


def glyphs(text: str, size: int = 48) -> Array:
    """Render ``text`` black on white with our font."""
    font = ImageFont.truetype(str(font_path()), size)
    canvas = Image.new("L", (size * (len(text) + 1), size * 2), 255)
    ImageDraw.Draw(canvas).text((size // 2, size // 2), text, font=font, fill=0)
    return np.array(canvas)


def differ(a: Array, b: Array) -> float:
    """Fraction of pixels whose ink differs."""
    return float(((a < 128) != (b < 128)).mean())


def jpeg(image: Image.Image, **save: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", **save)
    return out.getvalue()


def test_cyrillic_renders_glyphs_not_tofu() -> None:
    word, tofu = glyphs("человек"), glyphs("\uffff" * 7)
    assert (word < 128).mean() > 0.02
    assert differ(word, tofu) > 0.05
    letters = {ch: glyphs(ch) for ch in "челвок"}
    box = glyphs("\uffff")
    for ch, bitmap in letters.items():
        assert differ(bitmap, box) > 0.01, f"{ch} renders as .notdef"
    for (a, bitmap_a), (b, bitmap_b) in combinations(letters.items(), 2):
        assert differ(bitmap_a, bitmap_b) > 0.005, f"{a} and {b} render alike"


def test_cyrillic_label_in_annotation() -> None:
    image = np.full((480, 640, 3), 200, dtype=np.uint8)

    def render(label: str) -> Array:
        found = [Detection(0, label, 0.87, (100.0, 200.0, 400.0, 460.0))]
        return np.array(Image.open(io.BytesIO(annotate(image, found))).convert("L"))

    word, tofu = render("человек"), render("\uffff" * 7)
    label_area = (slice(150, 200), slice(100, 400))
    assert differ(word[label_area], tofu[label_area]) > 0.03
    assert differ(word[300:400, 150:350], tofu[300:400, 150:350]) == 0  # only the label differs


def test_exif_orientation_is_applied_and_metadata_dropped() -> None:
    source = Image.new("RGB", (64, 32), (255, 0, 0))
    source.paste((0, 0, 255), (0, 0, 8, 32))  # a blue stripe on the left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    exif[0x010F] = "TestCam"  # Make
    data = jpeg(source, exif=exif.tobytes(), icc_profile=b"\0" * 128, quality=95)
    image = load_image(data, max_pixels=25_000_000)
    assert image.shape == (64, 32, 3)
    assert image[2, 16, 2] > 200 and image[60, 16, 0] > 200  # the left stripe is now at the top
    out = Image.open(io.BytesIO(annotate(image, [])))
    assert out.size == (32, 64)
    assert not out.getexif() and "exif" not in out.info and "icc_profile" not in out.info


def test_big_image_is_downscaled_and_small_enough() -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (6000, 8000, 3), dtype=np.uint8)  # worst case for JPEG
    found = [Detection(5, "bus", 0.5, (800.0, 600.0, 7200.0, 5400.0))]
    data = annotate(noise, found)
    out = Image.open(io.BytesIO(data))
    assert out.size == (2560, 1920) and len(data) <= 9_000_000
    small = annotate(noise[:1920, :2560], found, max_bytes=1_000_000)
    assert len(small) <= 1_000_000 and Image.open(io.BytesIO(small)).size[0] <= 2560


def test_style_scales_with_image_size() -> None:
    small, large = line_width_and_font_size((320, 240)), line_width_and_font_size((2560, 1920))
    assert small == (2, 12)
    assert large[0] > small[0] * 3 and large[1] > small[1] * 5
    assert class_color(0) == class_color(20) != class_color(1)


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims a size; no pixel data is needed to trip the checks."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize("size", [(6000, 5000), (10000, 10000), (30000, 30000)])
def test_too_many_pixels(size: tuple[int, int]) -> None:
    # 30 MP: our cap; 100 MP: PIL's bomb warning; 900 MP: PIL's bomb error — all an BadImage
    with pytest.raises(BadImage, match=r"pixels|MP"):
        load_image(png_header(*size), max_pixels=25_000_000)


def test_bad_inputs_and_modes() -> None:
    with pytest.raises(BadImage, match="not a supported image"):
        load_image(b"%PDF-1.7 not an image", max_pixels=25_000_000)
    whole = jpeg(Image.new("RGB", (256, 256), (10, 200, 30)))
    with pytest.raises(BadImage, match="corrupt or truncated"):
        load_image(whole[: len(whole) // 2], max_pixels=25_000_000)
    for fmt in ("WEBP", "PNG", "JPEG"):  # every allowed format opens (WebP needs Image.init())
        encoded = io.BytesIO()
        Image.new("RGB", (8, 6), (255, 255, 255)).save(encoded, fmt)
        assert load_image(encoded.getvalue(), max_pixels=100).shape == (6, 8, 3)
    for fmt in ("BMP", "GIF", "TIFF"):  # the gateway takes only these three; the worker decodes nothing else
        encoded = io.BytesIO()
        Image.new("RGB", (8, 6), (255, 255, 255)).save(encoded, fmt)
        with pytest.raises(BadImage, match="not a supported image"):
            load_image(encoded.getvalue(), max_pixels=100)
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    out = io.BytesIO()
    rgba.save(out, "PNG")
    assert load_image(out.getvalue(), max_pixels=100).tolist() == np.full((4, 4, 3), 255).tolist()


def test_prepare_offline_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("YOLO_AUTOINSTALL", "true")  # the user's own choice stands
    prepare_offline_env(tmp_path / "cfg")
    assert os.environ["YOLO_OFFLINE"] == "1" and os.environ["YOLO_AUTOINSTALL"] == "true"
    assert os.environ["YOLO_CONFIG_DIR"] == str(tmp_path / "cfg")
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        copied = tmp_path / "cfg" / "Ultralytics" / name
        assert copied.read_bytes() == font_path().read_bytes() and copied.stat().st_mode & 0o777 == 0o644
    assert font_path().name == "DejaVuSans.ttf"
    prepare_offline_env(tmp_path / "other")  # idempotent; an existing YOLO_CONFIG_DIR wins
    assert os.environ["YOLO_CONFIG_DIR"] == str(tmp_path / "cfg") and not (tmp_path / "other").exists()
