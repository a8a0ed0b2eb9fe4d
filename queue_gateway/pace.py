"""How long a photo in line will wait: the live processing time per photo and the number of workers.

Fed by the results the gateway records and by the broker's consumer count; read for the "#4 in line, about
3 s" a person sees.
"""

from __future__ import annotations

import math


class Pace:
    def __init__(self, *, initial_s: float = 1.0, weight: float = 0.2) -> None:
        self._per_photo_s = initial_s
        self._weight = weight
        self._seen = 0
        self.workers = 1

    def observe(self, processing_s: float) -> None:
        """A worker took ``processing_s`` for one photo (fetch, detect, upload)."""
        if processing_s < 0 or math.isnan(processing_s):
            return
        self._seen += 1
        weight = max(self._weight, 1 / self._seen)  # the first few count fully, then a moving average
        self._per_photo_s += weight * (processing_s - self._per_photo_s)

    def set_workers(self, consumers: int) -> None:
        self.workers = max(1, consumers)

    @property
    def per_photo_s(self) -> float:
        return self._per_photo_s

    def eta_s(self, position: int) -> float:
        """Seconds until a photo at ``position`` in line is done (0 once it is not waiting)."""
        if position <= 0:
            return 0.0
        return math.ceil(position / self.workers) * self._per_photo_s
