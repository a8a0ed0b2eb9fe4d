"""Hostile uploads, made in the test: valid files whose decoding costs out of proportion to their size.

- :func:`scan_bomb`: a progressive JPEG whose first AC scan is repeated ``scans`` times. Every decoder walks the
  whole image once per scan (libjpeg-turbo's LJT-01-003 note); 20,000 scans of a 5000x5000 grey image are about
  1 MB and take Pillow minutes.
- :func:`comment_flood`: a JPEG with ``count`` empty comment segments before its frame.
- :func:`junk_before_frame`: a JPEG with ``size`` stray bytes after its start marker (decoders skip them one by one).
- :func:`png_chunk_flood`: a PNG with ``count`` empty ancillary chunks before its data.
"""

from __future__ import annotations

import io
import re
import struct
import zlib

from PIL import Image

_MARKER = re.compile(rb"\xff+([^\x00\xff\xd0-\xd7])")


def _segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of every marker segment, an SOS's entropy-coded data included in its segment."""
    found: list[tuple[int, int, int]] = []
    pos = 2
    while True:
        match = _MARKER.search(data, pos)
        assert match is not None, "not a JPEG"
        marker, start = match.group(1)[0], match.start()
        if found:
            found[-1] = (found[-1][0], found[-1][1], start)
        if marker == 0xD9:
            return found
        length = int.from_bytes(data[match.end() : match.end() + 2], "big")
        found.append((marker, start, match.end() + length))
        pos = match.end() + length


def scan_bomb(scans: int, size: tuple[int, int] = (5000, 5000)) -> bytes:
    """A progressive grey JPEG with its first AC scan (and the Huffman tables it uses) repeated ``scans`` times."""
    buffer = io.BytesIO()
    Image.new("L", size, 128).save(buffer, "JPEG", progressive=True, quality=50)
    data = buffer.getvalue()
    segments = _segments(data)
    sos = [i for i, (marker, _, _) in enumerate(segments) if marker == 0xDA]
    first_ac = sos[1]
    start = first_ac
    while start > 0 and segments[start - 1][0] == 0xC4:  # the DHT segments right before the scan
        start -= 1
    chunk = data[segments[start][1] : segments[first_ac][2]]
    end_of_image = data.rindex(b"\xff\xd9")
    return data[:end_of_image] + chunk * max(scans - len(sos), 0) + data[end_of_image:]


def plain_jpeg(size: tuple[int, int] = (320, 240), *, progressive: bool = False) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (40, 90, 160)).save(buffer, "JPEG", progressive=progressive, quality=85)
    return buffer.getvalue()


def comment_flood(count: int) -> bytes:
    """A small JPEG with ``count`` empty COM segments right after its start marker."""
    data = plain_jpeg()
    return data[:2] + b"\xff\xfe\x00\x02" * count + data[2:]


def junk_before_frame(size: int) -> bytes:
    """A small JPEG with ``size`` stray bytes (not 0xFF) between its first two segments."""
    data = plain_jpeg()
    _, _, end = _segments(data)[0]
    return data[:end] + b"\x00" * size + data[end:]


def fill_flood(size: int, *, after_scan: bool = False) -> bytes:
    """The JPEG start marker and ``size`` 0xFF bytes (fill bytes, as many as one likes, before a marker that never
    comes), at the start or after a real scan's header; a marker search written as ``\\xff+`` is quadratic on it."""
    head = plain_jpeg()
    if after_scan:
        sos = next(start for marker, start, _ in _segments(head) if marker == 0xDA)
        return head[: sos + 2 + int.from_bytes(head[sos + 2 : sos + 4], "big")] + b"\xff" * size
    return head[:2] + b"\xff" * size


def png_chunk_flood(count: int) -> bytes:
    """A small PNG with ``count`` empty private ancillary chunks before its image data."""
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(buffer, "PNG")
    data = buffer.getvalue()
    empty = struct.pack(">I", 0) + b"zzZz" + struct.pack(">I", zlib.crc32(b"zzZz") & 0xFFFFFFFF)
    at = 8 + 25  # after the signature and IHDR
    return data[:at] + empty * count + data[at:]
