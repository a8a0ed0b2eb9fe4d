"""Prometheus' own checker, ``promtool`` (Debian's ``prometheus`` package; it runs offline)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests import tools


def promtool() -> str:
    """The promtool binary: found, or installed once for the machine (``tests.tools``); never a skip."""
    return tools.promtool()


def run(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, args)], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )
