"""Cutting the objects out: largest first, a margin, none too small to see, at most ten, from the EXIF-rotated
original the worker saw; the ZIP holds each one and an index in the same order."""

from __future__ import annotations

import io
import json
import zipfile

from PIL import Image

from queue_gateway.crops import MAX_CROPS, archive, cut, file_names
from tests.images import jpeg


def box(x1: float, y1: float, x2: float, y2: float, label: str = "person", confidence: float = 0.9) -> dict:
    return {"label": label, "confidence": confidence, "box": [x1, y1, x2, y2], "class_id": 0}


def size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


def test_largest_first_with_a_margin_and_the_tiny_ones_counted() -> None:
    found = cut(jpeg(640, 480), [box(10, 10, 110, 210), box(200, 100, 600, 400, "bus"), box(5, 5, 30, 300)])
    assert [c.label for c in found.items] == ["bus", "person"] and found.too_small == 1 and found.more == 0
    assert size(found.items[0].jpeg) == (464, 348)  # 400x300 and 8 % on each side
    assert size(found.items[1].jpeg) == (116, 226)  # clamped at the photo's top edge


def test_at_most_ten_the_rest_counted() -> None:
    boxes = [box(i * 40, 0, i * 40 + 35 + i, 100) for i in range(14)]
    found = cut(jpeg(640, 480), boxes)
    assert len(found.items) == MAX_CROPS and found.more == 4
    widths = [size(c.jpeg)[0] for c in found.items]
    assert widths == sorted(widths, reverse=True)


def test_boxes_are_in_the_rotated_photo_the_worker_saw() -> None:
    upright = Image.new("RGB", (300, 200), "white")
    upright.paste((255, 0, 0), (0, 0, 100, 50))  # a red block in the top-left corner as it is seen
    rotated = upright.rotate(90, expand=True)  # stored sideways, with EXIF saying how to turn it back
    exif = Image.Exif()
    exif[0x0112] = 6  # turn it 90° clockwise to view it
    out = io.BytesIO()
    rotated.save(out, "JPEG", exif=exif, quality=95)
    (crop,) = cut(out.getvalue(), [box(0, 0, 100, 50)]).items
    red, green, blue = Image.open(io.BytesIO(crop.jpeg)).convert("RGB").getpixel((40, 20))
    assert red > 200 and green < 60 and blue < 60


def test_nothing_to_cut_decodes_nothing() -> None:
    found = cut(b"not even an image", [box(0, 0, 10, 10)])
    assert found.items == [] and found.too_small == 1


def test_the_archive_holds_the_index_and_each_crop_in_order() -> None:
    found = cut(jpeg(640, 480), [box(10, 10, 110, 210), box(200, 100, 600, 400, "traffic light")])
    names = file_names(found)
    assert names == ["01-traffic-light.jpg", "02-person.jpg"]
    zipped = zipfile.ZipFile(io.BytesIO(archive({"objects": names}, found)))
    assert zipped.namelist() == ["index.json", *names]
    assert json.loads(zipped.read("index.json")) == {"objects": names}
    assert zipped.read(names[0]) == found.items[0].jpeg
