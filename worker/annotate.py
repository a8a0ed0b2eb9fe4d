"""Decode uploads safely; draw detections with PIL and DejaVuSans (non-Latin labels render, no downloads)."""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from queue_gateway.public.imagecheck import ImageProblem, inspect
from worker.detections import Detection, RGBImage
from worker.errors import BadImage
from worker.offline import font_path

MAX_SIDE = 2560
MAX_BYTES = 9_000_000
DRAFT_SIDE = 1280  # a JPEG twice this long (or more) is decoded at a reduced scale; detections map back
_PROBLEMS = {
    "not_an_image": "the file is not a supported image (JPEG, PNG or WebP)",
    "unsupported_format": "the file is not a supported image (JPEG, PNG or WebP)",
    "too_many_pixels": "the image has too many pixels",
    "too_complex": "the image is built to be very slow to decode",
}
_QUALITIES = (90, 85, 80, 70, 60, 50, 40)
_PALETTE = (
    "042AFF", "0BDBEB", "F3F3F3", "00DFB7", "111F68", "FF6FDD", "FF444F", "CCED00", "00F344", "BD00FF",
    "00B4FF", "DD00BA", "00FFFF", "26C000", "01FFB3", "7D24FF", "7B0068", "FF1B6C", "FC6D2F", "A2FF0B",
)  # fmt: skip


def load_image(data: bytes, *, max_pixels: int) -> RGBImage:
    """Decode to a full-size RGB array: EXIF orientation applied, alpha flattened onto white, pixels capped."""
    return decode(data, max_pixels=max_pixels, draft_side=None)[0]


def decode(data: bytes, *, max_pixels: int, draft_side: int | None = DRAFT_SIDE) -> tuple[RGBImage, float]:
    """Decode a photo within bounded work; return the RGB array (read-only) and its scale (full-size pixels per
    pixel). See :func:`open_photo`."""
    photo = open_photo(data, max_pixels=max_pixels, draft_side=draft_side)
    return photo.pixels, photo.scale


@dataclass(frozen=True, slots=True)
class Photo:
    """A decoded photo: the RGB picture to draw on, the same pixels as a read-only array for the detector, and its
    scale (full-size pixels per pixel of these)."""

    picture: Image.Image
    pixels: RGBImage
    scale: float


def open_photo(data: bytes, *, max_pixels: int, draft_side: int | None = DRAFT_SIDE) -> Photo:
    """Decode a photo within bounded work, once: the picture for :func:`render` and its pixels for the detector.

    The structure is checked first (``queue_gateway.public.imagecheck``: too many scans, segments or pixels are
    refused before a decoder sees them). A JPEG at least twice ``draft_side`` on its long side is decoded at 1/2,
    1/4 or 1/8 scale by libjpeg itself (its long side stays at least ``draft_side``): far less work, and the model
    looks at 416-640 px anyway. Multiply coordinates in the array by the scale to get full-size ones. The array is
    the one copy of the pixels made here (a read-only view for the detector); drawing later uses the picture.
    """
    try:
        structure = inspect(data, max_pixels=max_pixels)
    except ImageProblem as problem:
        raise BadImage(
            _PROBLEMS.get(problem.code, "the image data is corrupt or truncated") + f" ({problem})"
        ) from None
    Image.init()  # register every plugin: open(formats=...) only knows the preinit ones (no WEBP) otherwise
    try:
        image = Image.open(io.BytesIO(data), formats=(structure.format,))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImage("the image has too many pixels") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, ImportError) as exc:
        # ImportError: once imported, ultralytics wraps Image.open to try an optional HEIF plugin on
        # anything unidentified, and that plugin is not installed
        raise BadImage("the file is not a supported image (JPEG, PNG or WebP)") from exc
    full_side = max(image.size)
    if draft_side and structure.format == "JPEG" and full_side >= 2 * draft_side:
        ratio = draft_side / full_side
        image.draft("RGB", (math.ceil(image.width * ratio), math.ceil(image.height * ratio)))
    scale = full_side / max(image.size)
    try:
        ImageOps.exif_transpose(image, in_place=True)  # no copy when there is nothing to rotate
        picture = _to_rgb(image)  # the decoded image itself when it is RGB already (a JPEG photo)
        picture.load()
    except (OSError, ValueError, SyntaxError) as exc:
        image.close()
        raise BadImage("the image data is corrupt or truncated") from exc
    if picture is not image:
        image.close()
    # np.asarray copies the pixels out of Pillow's storage once, into an array nobody can write to
    return Photo(picture, np.asarray(picture), scale)


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB, with transparency composited onto white and 16-bit greys scaled to 8 bits."""
    if image.mode == "RGB":
        return image
    if image.mode in {"RGBA", "LA", "PA", "RGBa", "La"} or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if image.mode.startswith("I;16"):
        return Image.fromarray((np.asarray(image).astype(np.uint32) >> 8).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def line_width_and_font_size(size: tuple[int, int]) -> tuple[int, int]:
    """Box line width and label font size for an image of (width, height), as ultralytics scales them."""
    mean_side = sum(size) / 2
    return max(round(mean_side * 0.003), 2), max(round(mean_side * 0.035), 12)


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable colour per class."""
    hex_rgb = _PALETTE[class_id % len(_PALETTE)]
    return int(hex_rgb[0:2], 16), int(hex_rgb[2:4], 16), int(hex_rgb[4:6], 16)


def _text_color(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on light colours, white on dark ones."""
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else (255, 255, 255)


def annotate(
    image: RGBImage,
    detections: Sequence[Detection],
    *,
    max_side: int = MAX_SIDE,
    max_bytes: int = MAX_BYTES,
    label: Callable[[str], str] | None = None,
) -> bytes:
    """Draw boxes and "label 0.87" tags on a copy of an RGB array; see :func:`render`."""
    canvas = Image.fromarray(np.ascontiguousarray(image[..., :3], dtype=np.uint8))
    return render(canvas, detections, max_side=max_side, max_bytes=max_bytes, label=label)


def render(
    picture: Image.Image,
    detections: Sequence[Detection],
    *,
    max_side: int = MAX_SIDE,
    max_bytes: int = MAX_BYTES,
    label: Callable[[str], str] | None = None,
) -> bytes:
    """Draw boxes and "label 0.87" tags on ``picture`` itself (it is changed) and encode it once: a JPEG without
    EXIF/ICC, long side ≤ max_side, ≤ max_bytes (a lower quality, then a smaller size, only when it is over).

    ``label`` turns a class name into the words drawn (the person's language); by default the name itself.
    """
    canvas = _drawn(picture if picture.mode == "RGB" else picture.convert("RGB"), detections, max_side, label)
    while True:
        for quality in _QUALITIES:
            out = io.BytesIO()
            canvas.save(out, "JPEG", quality=quality)  # optimize=True: +5 ms a photo for 7 % fewer bytes
            if out.tell() <= max_bytes:
                return out.getvalue()
        if max(canvas.size) <= 64:
            raise BadImage(f"cannot encode the annotated image under {max_bytes} bytes")
        canvas = _shrink(canvas, 0.75)


def draw(
    image: RGBImage,
    detections: Sequence[Detection],
    *,
    max_side: int = MAX_SIDE,
    label: Callable[[str], str] | None = None,
) -> RGBImage:
    """The boxes and tags ``annotate`` draws, on an RGB array (a frame of an animation), long side ≤ max_side."""
    canvas = Image.fromarray(np.ascontiguousarray(image[..., :3], dtype=np.uint8))
    return np.asarray(_drawn(canvas, detections, max_side, label), dtype=np.uint8)


def _drawn(
    canvas: Image.Image, detections: Sequence[Detection], max_side: int, label: Callable[[str], str] | None
) -> Image.Image:
    """An RGB ``canvas`` shrunk to ``max_side`` with the detections drawn (their boxes scaled with it); drawn on
    the canvas itself when it is small enough already."""
    scale = min(1.0, max_side / max(canvas.size))
    if scale < 1.0:
        canvas = _shrink(canvas, scale)
    _draw(canvas, detections, scale, label or (lambda name: name))
    return canvas


def _shrink(canvas: Image.Image, scale: float) -> Image.Image:
    """Downscale by ``scale`` (Lanczos, with a fast integer pre-reduction)."""
    size = (max(round(canvas.width * scale), 1), max(round(canvas.height * scale), 1))
    return canvas.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


@functools.lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont:
    """DejaVuSans at ``size`` px, read once per size (Pillow fonts are read-only once loaded)."""
    return ImageFont.truetype(str(font_path()), size)


def _draw(canvas: Image.Image, detections: Sequence[Detection], scale: float, label: Callable[[str], str]) -> None:
    """Draw every detection, most confident last (on top)."""
    lw, font_size = line_width_and_font_size(canvas.size)
    font = _font(font_size)
    ascent, descent = font.getmetrics()
    pad = max(lw // 2, 1)
    draw = ImageDraw.Draw(canvas)
    for det in sorted(detections, key=lambda d: d.confidence):
        x1, y1, x2, y2 = (v * scale for v in det.box)
        color = class_color(det.class_id)
        draw.rectangle((x1, y1, max(x2, x1), max(y2, y1)), outline=color, width=lw)
        text = f"{label(det.label)} {det.confidence:.2f}"
        tw, th = font.getlength(text) + 2 * pad, ascent + descent + 2 * pad
        left = max(min(x1, canvas.width - tw), 0)
        top = y1 - th if y1 >= th else y1  # above the box when it fits, else just inside it
        draw.rectangle((left, top, left + tw, top + th), fill=color)
        draw.text((left + pad, top + pad), text, fill=_text_color(color), font=font)
