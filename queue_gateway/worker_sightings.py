"""When each worker was last seen: the database hears of a worker at most every few seconds, not on every call."""

from __future__ import annotations

import time

SIGHTING_EVERY_S = 10.0  # "workers seen in the last minute" needs no more than this


class Sightings:
    """When each worker was last recorded as seen; the database hears of one at most every few seconds."""

    def __init__(self, every_s: float = SIGHTING_EVERY_S) -> None:
        self._every_s = every_s
        self._last: dict[tuple[str, str | None], float] = {}

    def due(self, worker: str, model: str | None = None) -> bool:
        key = (worker, model)
        at = time.monotonic()
        if at - self._last.get(key, float("-inf")) < self._every_s:
            return False
        self._last[key] = at
        return True
