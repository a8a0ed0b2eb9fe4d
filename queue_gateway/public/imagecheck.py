"""What a photo will cost to decode, read from its structure before anything decodes it.

A photo's decoding work is not bounded by its size in bytes: a 1 MB progressive JPEG whose one scan is repeated
20,000 times makes a decoder walk all 25 MP twenty thousand times (libjpeg-turbo leaves limiting scans to the
application, and Pillow sets no limit). So both the gateway (before it stores anything) and the worker (before it
decodes) read the structure here, refuse what costs out of proportion, and learn the format and size on the way:

- JPEG: the segments are walked by their lengths, and only markers are visited, found by ``re`` in C, so a scan
  bomb, a million empty comments or megabytes of junk cost microseconds to refuse and at most ``MAX_SEGMENTS``
  steps of Python. At most ``MAX_JPEG_SCANS`` scans (a camera's progressive JPEG has about 10), one frame, at
  most 4 components, and the end-of-image marker after them (else the file was cut off).
- PNG: the chunks are walked by their lengths, at most ``MAX_PNG_CHUNKS`` of them, ending in IEND.
- WebP: the RIFF length must cover the file; the size comes from the VP8/VP8L/VP8X header.

A leaf module (the standard library only): the gateway and the worker import it alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_JPEG_SCANS = 100  # progressive JPEGs from cameras and encoders have 3-20; each scan walks the whole image
MAX_SEGMENTS = 500  # JPEG header segments in all (APPn, COM, DQT, DHT …); real photos carry a few dozen
MAX_JUNK = 4096  # stray bytes between JPEG segments, which decoders skip one at a time
MAX_PNG_CHUNKS = 50_000  # a 20 MB PNG in 8 KB data chunks has 2,500
MAX_COMPONENTS = 4  # grey, YCbCr, CMYK

# a marker: 0xFF, then a code that is not a stuffed 0, a fill byte or RSTn. One 0xFF, never ``\xff+``: a run of
# fill bytes before a marker is skipped a byte at a time (and counted as stray bytes before the first scan), where
# ``\xff+`` made the search quadratic in a run of 0xFF (a 100 KB upload of them held the event loop for 30 s).
_MARKER = re.compile(rb"\xff([^\x00\xff\xd0-\xd7])")
_STANDALONE = {0x01, 0xD8, 0xD9}  # TEM, SOI, EOI carry no length (RSTn are skipped by the pattern)
_FRAMES = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # SOFn
_PROGRESSIVE = {0xC2, 0xC6, 0xCA, 0xCE}


class ImageProblem(ValueError):
    """Why a file will not be decoded: ``code`` is one of the gateway's error codes (``corrupt``,
    ``too_complex`` …), the message says what was found."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Structure:
    """What the structure says: the format, the pixel size, and the work it promises."""

    format: str  # "JPEG" | "PNG" | "WEBP"
    width: int
    height: int
    scans: int = 1  # JPEG: decoding passes over the whole image
    progressive: bool = False

    @property
    def pixels(self) -> int:
        return self.width * self.height


def sniff(data: bytes) -> str | None:
    """The format named by the file's first bytes, whatever the file name or Content-Type claims."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:2] == b"BM":
        return "BMP"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "HEIF"
    return None


def inspect(data: bytes, *, max_pixels: int) -> Structure:
    """The structure of a JPEG, PNG or WebP photo, or :class:`ImageProblem`."""
    kind = sniff(data)
    if kind == "JPEG":
        found = _jpeg(data)
    elif kind == "PNG":
        found = _png(data)
    elif kind == "WEBP":
        found = _webp(data)
    elif kind is None:
        raise ImageProblem("not_an_image", "not an image")
    else:
        raise ImageProblem("unsupported_format", f"{kind} images are not supported")
    if found.width <= 0 or found.height <= 0:
        raise ImageProblem("corrupt", "the header gives no size")
    if found.pixels > max_pixels:
        raise ImageProblem("too_many_pixels", f"{found.width}x{found.height} pixels")
    return found


@dataclass(slots=True)
class _JpegWalk:
    """What the walk over a JPEG's markers has met so far."""

    segments: int = 0
    scans: int = 0
    junk: int = 0
    frame: tuple[int, int, int, bool] | None = None  # width, height, components, progressive

    def segment(self, data: bytes, marker: int, pos: int, length: int) -> None:
        """Count one segment (``length`` bytes of payload at ``pos``) against the limits."""
        self.segments += 1
        if self.segments > MAX_SEGMENTS:
            raise ImageProblem("too_complex", f"over {MAX_SEGMENTS} segments")
        if marker in _FRAMES:
            if self.frame is not None:
                raise ImageProblem("unsupported_format", "more than one frame (a hierarchical JPEG)")
            self.frame = _frame(data, pos, length, progressive=marker in _PROGRESSIVE)
        elif marker == 0xDA:  # SOS: entropy-coded data follows its header
            if self.frame is None:
                raise ImageProblem("corrupt", "a scan before the frame header")
            self.scans += 1
            if self.scans > MAX_JPEG_SCANS:
                raise ImageProblem("too_complex", f"over {MAX_JPEG_SCANS} scans")

    def stray(self, count: int) -> None:
        self.junk += count
        if self.junk > MAX_JUNK:
            raise ImageProblem("too_complex", f"over {MAX_JUNK} stray bytes between its segments")


def _jpeg(data: bytes) -> Structure:
    """Walk the markers from SOI to EOI by their lengths; entropy-coded data is skipped by the pattern search."""
    walk = _JpegWalk()
    pos = 2
    while (found := _MARKER.search(data, pos)) is not None:
        if walk.scans == 0:  # before the first scan nothing lies between segments; after it, entropy-coded data
            walk.stray(found.start() - pos)
        marker, pos = found.group(1)[0], found.end()
        if marker == 0xD9:  # EOI
            if walk.frame is None or walk.scans == 0:
                raise ImageProblem("corrupt", "no image data before the end-of-image marker")
            width, height, _, progressive = walk.frame
            return Structure("JPEG", width, height, scans=walk.scans, progressive=progressive)
        if marker in _STANDALONE:
            if marker == 0xD8:
                raise ImageProblem("corrupt", "a second start-of-image marker")
            continue
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2 or pos + length > len(data):
            raise ImageProblem("corrupt", "a segment runs past the end of the file")
        walk.segment(data, marker, pos, length)
        pos += length
    raise ImageProblem("corrupt", "the image is cut off (no end-of-image marker)")


def _frame(data: bytes, pos: int, length: int, *, progressive: bool) -> tuple[int, int, int, bool]:
    if length < 8:
        raise ImageProblem("corrupt", "a frame header too short")
    height = int.from_bytes(data[pos + 3 : pos + 5], "big")
    width = int.from_bytes(data[pos + 5 : pos + 7], "big")
    components = data[pos + 7]
    if not 1 <= components <= MAX_COMPONENTS or length < 8 + 3 * components:
        raise ImageProblem("unsupported_format", f"{components} colour components")
    return width, height, components, progressive


def _png(data: bytes) -> Structure:
    """Walk the chunks by their lengths: IHDR first, IEND last, at most ``MAX_PNG_CHUNKS``."""
    end = len(data)
    if end < 33 or data[12:16] != b"IHDR":
        raise ImageProblem("corrupt", "no IHDR header")
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    pos, chunks = 8, 0
    while pos + 8 <= end:
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        pos += 12 + length
        chunks += 1
        if pos > end:
            break
        if kind == b"IEND":
            return Structure("PNG", width, height)
        if chunks >= MAX_PNG_CHUNKS:
            raise ImageProblem("too_complex", f"over {MAX_PNG_CHUNKS} chunks")
    raise ImageProblem("corrupt", "the image is cut off (no IEND chunk)")


def _webp(data: bytes) -> Structure:
    """The RIFF length must cover the file; the size is in the first chunk (lossy, lossless or extended)."""
    if int.from_bytes(data[4:8], "little") + 8 > len(data) or len(data) < 30:
        raise ImageProblem("corrupt", "the image is cut off")
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
    elif chunk == b"VP8L":
        if data[20] != 0x2F:
            raise ImageProblem("corrupt", "a lossless header without its signature")
        bits = int.from_bytes(data[21:25], "little")
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    elif chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise ImageProblem("corrupt", "a lossy header without its start code")
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        height = int.from_bytes(data[28:30], "little") & 0x3FFF
    else:
        raise ImageProblem("corrupt", "no VP8, VP8L or VP8X chunk first")
    return Structure("WEBP", width, height)
