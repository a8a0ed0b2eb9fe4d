"""The sample photos the demo pushes through: ultralytics' ``bus.jpg`` and ``zidane.jpg``.

They ship inside the ultralytics package. Where it is not installed (the lean install has no torch), the
ultralytics wheel is downloaded once from PyPI (1.4 MB, no install) and the two photos taken from it into the
data directory. The photos are ultralytics' (AGPL-3.0); detectbot does not redistribute them.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

NAMES = ("bus.jpg", "zidane.jpg")


class SamplesUnavailable(Exception):
    """The sample photos are neither installed nor downloadable; ``str()`` says what to do instead."""


def sample_photos(data_dir: Path) -> list[Path]:
    """The two sample photos, from the installed ultralytics, the cache, or PyPI (cached)."""
    installed = _installed_assets()
    if installed and all((installed / name).is_file() for name in NAMES):
        return [installed / name for name in NAMES]
    cache = data_dir / "samples"
    if all((cache / name).is_file() for name in NAMES):
        return [cache / name for name in NAMES]
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        wheel = _download_wheel(Path(tmp))
        with zipfile.ZipFile(wheel) as archive:
            for name in NAMES:
                data = archive.read(f"ultralytics/assets/{name}")
                partial = cache / f".{name}.tmp"
                partial.write_bytes(data)
                partial.replace(cache / name)
    return [cache / name for name in NAMES]


def _installed_assets() -> Path | None:
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "assets"


def _download_wheel(dest: Path) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--disable-pip-version-check",
        "--no-input", "--progress-bar", "off", "ultralytics", "-d", str(dest),
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SamplesUnavailable(
            f"could not download the sample photos from PyPI ({exc}); pass your own photos"
        ) from exc
    found = sorted(dest.glob("ultralytics-*.whl"))
    if proc.returncode != 0 or not found:
        lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
        why = lines[-1] if lines else f"pip exited with {proc.returncode}"
        raise SamplesUnavailable(f"could not download the sample photos from PyPI ({why}); pass your own photos")
    return found[0]
