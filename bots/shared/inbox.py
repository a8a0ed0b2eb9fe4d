"""A small durable inbox: requests a bot acknowledged to its platform but has not handed to the gateway yet.

Discord sends an interaction once: a bot that dies after deferring it (the person sees "thinking…") and before
the gateway has the photo would lose it. So the interaction is written here (one JSON file, fsynced) as soon as
it is deferred, removed once the gateway accepted its job, and replayed by the bot when it starts again (while
the interaction's 15-minute token still lives). The idempotency key makes a replay of a request the gateway
did get harmless.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,120}$")


class Inbox:
    def __init__(self, folder: Path, *, max_age_s: float) -> None:
        self.folder = folder
        self.max_age_s = max_age_s

    def put(self, key: str, payload: dict[str, Any]) -> None:
        """Keep ``payload`` under ``key`` until :meth:`done` (atomic, durable)."""
        path = self._path(key)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        data = json.dumps({"at": time.time(), "payload": payload}).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(self.folder)

    def done(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def pending(self) -> list[tuple[str, dict[str, Any]]]:
        """What a previous run left, oldest first; entries too old to act on are dropped (and logged)."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                entry = json.loads(path.read_text())
            except (OSError, ValueError):
                log.warning("unreadable inbox entry %s dropped", path.name)
                path.unlink(missing_ok=True)
                continue
            if time.time() - float(entry.get("at", 0)) > self.max_age_s:
                log.warning("inbox entry %s is too old to answer; dropped", path.stem)
                path.unlink(missing_ok=True)
                continue
            found.append((float(entry["at"]), path.stem, dict(entry["payload"])))
        return [(key, payload) for _, key, payload in sorted(found)]

    def _path(self, key: str) -> Path:
        if not _SAFE.match(key):
            raise ValueError(f"not a safe inbox key: {key!r}")
        return self.folder / f"{key}.json"


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
