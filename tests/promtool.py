"""Prometheus' own checker, ``promtool`` (Debian's ``prometheus`` package; it runs offline)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def promtool() -> str:
    """The promtool binary; a clear failure (never a skip) where it is not installed."""
    path = os.environ.get("DETECTBOT_PROMTOOL") or shutil.which("promtool")
    if not path:
        pytest.fail("promtool is needed: apt-get install -y prometheus (or DETECTBOT_PROMTOOL=/path/to/promtool)")
    return path


def run(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, args)], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )
