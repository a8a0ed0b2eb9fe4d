"""The outside programs some tests drive, found or provided in one place: Debian's Chromium (the web page),
Debian's ``promtool`` (alert rules, dashboards, every ``/metrics``), ``checkov`` (the Kubernetes manifests), and
the programs docs/operations.md backs up and restores with (``pg_dump``, ``pg_restore``, ``sqlite3``, ``rsync``).

Each is looked for first (an environment variable, then ``PATH``); where it is missing it is installed once for the
machine (``apt-get`` for the Debian packages; a virtualenv under the test cache for checkov, whose pinned
dependencies clash with the dev tools'), so that ``pytest`` alone works on a fresh machine, as the README promises.
Where that cannot work, the test fails with the command to run: never a skip.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("DETECTBOT_TEST_CACHE") or Path.home() / ".cache" / "detectbot-tests")
CHECKOV_VERSION = "3.3.30"


@contextmanager
def _machine_lock(name: str) -> Iterator[None]:
    """One installer at a time on this machine (test processes, helpers and CI may start together)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _apt_install(package: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}

    def apt(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["apt-get", *args], env=env, capture_output=True, text=True, timeout=1200, check=False)

    installed = apt("install", "-y", "-q", package)
    if installed.returncode != 0:  # a fresh machine may have no package lists yet
        apt("update", "-q")
        installed = apt("install", "-y", "-q", package)
    return installed


def debian_program(path: str, package: str, *, env: str | None = None) -> str:
    """``path`` (or ``$env``, or the name on PATH), installing Debian's ``package`` when it is missing."""
    found = (
        (os.environ.get(env) if env else None)
        or shutil.which(Path(path).name)
        or (path if Path(path).exists() else None)
    )
    if found:
        return found
    if shutil.which("apt-get") is None:
        pytest.fail(f"{path} is missing and there is no apt-get: install Debian's '{package}' package")
    with _machine_lock(package):
        if not Path(path).exists():
            installed = _apt_install(package)
            if installed.returncode != 0 or not Path(path).exists():
                pytest.fail(
                    f"could not install Debian's {package} ({path}): apt-get install -y {package} exited "
                    f"{installed.returncode}: {installed.stderr.strip()[-800:]}"
                )
    return path


def backup_tools() -> dict[str, str]:
    """What docs/operations.md runs: Postgres' client programs, SQLite's shell and rsync."""
    return {
        "pg_dump": debian_program("/usr/bin/pg_dump", "postgresql-client"),
        "pg_restore": debian_program("/usr/bin/pg_restore", "postgresql-client"),
        "sqlite3": debian_program("/usr/bin/sqlite3", "sqlite3"),
        "rsync": debian_program("/usr/bin/rsync", "rsync"),
    }


def chromium() -> str:
    """Debian's Chromium (never ``playwright install``: it downloads, and cannot work here)."""
    return debian_program("/usr/bin/chromium", "chromium", env="DETECTBOT_CHROMIUM")


def promtool() -> str:
    """Prometheus' own checker, from Debian's ``prometheus`` package (it runs offline)."""
    return debian_program("/usr/bin/promtool", "prometheus", env="DETECTBOT_PROMTOOL")


def checkov() -> str:
    """checkov in a virtualenv of its own under the test cache (it pins packages older than our dev tools')."""
    found = os.environ.get("DETECTBOT_CHECKOV") or shutil.which("checkov")
    if found:
        return found
    venv = CACHE / f"checkov-{CHECKOV_VERSION}"
    program = venv / "bin" / "checkov"
    with _machine_lock("checkov"):
        if not program.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
            installed = subprocess.run(
                [str(venv / "bin" / "pip"), "install", "-q", f"checkov=={CHECKOV_VERSION}"],
                capture_output=True, text=True, timeout=1800, check=False,
            )  # fmt: skip
            if installed.returncode != 0 or not program.exists():
                shutil.rmtree(venv, ignore_errors=True)
                pytest.fail(
                    f"could not install checkov {CHECKOV_VERSION} into {venv}: {installed.stderr.strip()[-800:]} "
                    "(or set DETECTBOT_CHECKOV to a checkov of your own)"
                )
    return str(program)
