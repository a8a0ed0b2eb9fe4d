"""The benchmarks' test photos: a realistic 1280x960 JPEG of about 100 KB, a heavier one of about 320 KB, and a
4000x3000 one (a 12 MP phone photo) of about 1.8 MB.

    python -m benchmarks.photos [--out DIR]

``photo("100k")`` is ultralytics' ``zidane.jpg`` (two people, a real photo) scaled to cover 1280x960 and
centre-cropped, saved at the JPEG quality (70-90) whose size is closest to 100 KB; ``photo("320k")`` is
``bus.jpg`` (a bus and four people) scaled to 1280x960, as the earlier benchmarks measured it, at the quality
closest to 320 KB; ``photo("12mp")`` is ``zidane.jpg`` scaled to cover 4000x3000 with a fine sensor-like grain
(seeded; scaled up alone it would be smoother than any camera's photo, and so cheaper to decode), at the quality
closest to 1.8 MB. They come from ``detectbot.samples.sample_photos`` (the installed ultralytics, or PyPI once).
Where neither is available, a seeded synthetic picture (gradients, shapes and grain) of the same size stands in.
Everything is deterministic: the same bytes on every run with the same Pillow.

``unique(data, n)`` gives the n-th copy a JPEG comment segment of its own, so that every job is a new photo
(the gateway's result cache answers a repeated photo without running the model) while the pixels, and so the
cost of every stage, stay the same.
"""

from __future__ import annotations

import argparse
import functools
import io
import sys
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from tests.conftest_models import cache_dir

Kind = Literal["100k", "320k", "12mp"]
KINDS: tuple[Kind, ...] = ("100k", "320k", "12mp")
SIZE = (1280, 960)
SIZES: dict[str, tuple[int, int]] = {"100k": SIZE, "320k": SIZE, "12mp": (4000, 3000)}
TARGETS: dict[str, tuple[str, int]] = {
    "100k": ("zidane.jpg", 100_000),
    "320k": ("bus.jpg", 320_000),
    "12mp": ("zidane.jpg", 1_800_000),
}
GRAIN_12MP = 4.0  # standard deviation of the added grain, in 8-bit levels
QUALITIES = range(70, 91)
SEED = 20261201


@functools.cache
def photo(kind: Kind = "100k") -> bytes:
    """The benchmark photo of that kind (cached per process)."""
    name, target = TARGETS[kind]
    source = _sample(name)
    if source is None:
        picture = synthetic(SEED + KINDS.index(kind)).resize(SIZES[kind], Image.Resampling.BICUBIC)
    elif kind == "320k":
        picture = source.resize(SIZE, Image.Resampling.BILINEAR)  # the stretched bus that bench_model times
    else:
        picture = _cover(source, SIZES[kind])
    if kind == "12mp":
        picture = _grain(picture, GRAIN_12MP, SEED)
    return _closest(picture, target)


def describe(kind: Kind = "100k") -> dict[str, object]:
    """What the photo is, for the JSON results."""
    data = photo(kind)
    name, _ = TARGETS[kind]
    with Image.open(io.BytesIO(data)) as image:
        size = image.size
    return {
        "kind": kind,
        "source": name if _sample(name) is not None else f"synthetic (seed {SEED})",
        "width": size[0],
        "height": size[1],
        "bytes": len(data),
        "quality": _quality_of(kind),
    }


def unique(data: bytes, n: int) -> bytes:
    """The same JPEG with a comment segment naming ``n`` right after the start marker: new bytes, same pixels."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    text = f"detectbot-bench {n}".encode()
    return data[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + data[2:]


def synthetic(seed: int) -> Image.Image:
    """A textured stand-in photo: smooth gradients, soft shapes and film grain (seeded)."""
    rng = np.random.default_rng(seed)
    width, height = SIZE
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            90 + 80 * np.sin(x / 210 + rng.uniform(0, 6)) * np.cos(y / 330),
            110 + 60 * np.cos(x / 170 + y / 260 + rng.uniform(0, 6)),
            130 + 70 * np.sin(y / 190 + rng.uniform(0, 6)),
        ],
        axis=-1,
    )
    picture = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for _ in range(40):
        x0, y0 = int(rng.integers(0, width - 60)), int(rng.integers(0, height - 60))
        w, h = int(rng.integers(40, 400)), int(rng.integers(40, 300))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x0 + w, y0 + h), fill=colour)
    picture = picture.filter(ImageFilter.GaussianBlur(2))
    grain = rng.normal(0, 9, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(picture, np.float32) + grain, 0, 255).astype(np.uint8))


def _grain(picture: Image.Image, sigma: float, seed: int) -> Image.Image:
    """``picture`` with seeded Gaussian grain (a camera sensor's noise, which its JPEG has to encode)."""
    noise = np.random.default_rng(seed).normal(0, sigma, (picture.height, picture.width, 3)).astype(np.float32)
    return Image.fromarray(np.clip(np.asarray(picture, np.float32) + noise, 0, 255).astype(np.uint8))


def _sample(name: str) -> Image.Image | None:
    from detectbot.samples import SamplesUnavailable, sample_photos

    try:
        paths = {path.name: path for path in sample_photos(cache_dir())}
    except SamplesUnavailable:
        return None
    with Image.open(paths[name]) as image:
        return image.convert("RGB")


def _cover(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale to cover ``size`` (bicubic) and crop the centre."""
    scale = max(size[0] / image.width, size[1] / image.height)
    scaled = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
    left, top = (scaled.width - size[0]) // 2, (scaled.height - size[1]) // 2
    return scaled.crop((left, top, left + size[0], top + size[1]))


_chosen_quality: dict[int, int] = {}


def _closest(picture: Image.Image, target: int) -> bytes:
    best: tuple[int, int, bytes] | None = None
    for quality in QUALITIES:
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=quality)
        distance = abs(buffer.tell() - target)
        if best is None or distance < best[0]:
            best = (distance, quality, buffer.getvalue())
    assert best is not None
    _chosen_quality[target] = best[1]
    return best[2]


def _quality_of(kind: Kind) -> int:
    photo(kind)
    return _chosen_quality[TARGETS[kind][1]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write bench-100k.jpg, bench-320k.jpg and bench-12mp.jpg here")
    args = parser.parse_args(argv)
    for kind in KINDS:
        info = describe(kind)
        print(info)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"bench-{kind}.jpg").write_bytes(photo(kind))
    return 0


if __name__ == "__main__":
    sys.exit(main())
