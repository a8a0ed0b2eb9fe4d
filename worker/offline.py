"""Offline hygiene for ultralytics: no network probes, no auto-installs, fonts on disk before any plot."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

_FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
_FONT_RELPATH = Path("fonts") / "ttf" / "DejaVuSans.ttf"


def font_path() -> Path:
    """Path of matplotlib's DejaVuSans.ttf, a TTF with wide Unicode coverage (Latin, Cyrillic, Greek …)."""
    spec = importlib.util.find_spec("matplotlib")  # locate without importing matplotlib (saves RSS)
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "mpl-data" / _FONT_RELPATH
        if candidate.is_file():
            return candidate
    import matplotlib  # fallback: a relocated data path

    candidate = Path(matplotlib.get_data_path()) / _FONT_RELPATH
    if not candidate.is_file():
        raise FileNotFoundError(f"DejaVuSans.ttf not found under {candidate.parent}")
    return candidate


def prepare_offline_env(config_dir: Path) -> None:
    """Set YOLO_OFFLINE, YOLO_AUTOINSTALL, YOLO_CONFIG_DIR (unless set); put fonts where ultralytics looks."""
    wanted = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false", "YOLO_CONFIG_DIR": str(config_dir)}
    missing = [key for key in wanted if key not in os.environ]
    if missing and "ultralytics" in sys.modules:
        log.warning("ultralytics was imported before prepare_offline_env; %s may not apply", ", ".join(missing))
    for key in missing:
        os.environ[key] = wanted[key]
    # ultralytics reads $YOLO_CONFIG_DIR/Ultralytics; honour a user's own YOLO_CONFIG_DIR.
    fonts_dir = Path(os.environ["YOLO_CONFIG_DIR"]).expanduser() / "Ultralytics"
    try:
        _copy_fonts(fonts_dir)
    except OSError as exc:  # only ultralytics' own plotting needs them; ours uses font_path() directly
        log.warning("could not put fonts in %s: %s", fonts_dir, exc)


def _copy_fonts(fonts_dir: Path) -> None:
    """Copy DejaVuSans.ttf as Arial.ttf and Arial.Unicode.ttf (atomically; skipped when already there)."""
    fonts_dir.mkdir(parents=True, exist_ok=True)
    source = font_path()
    size = source.stat().st_size
    for name in _FONT_NAMES:
        target = fonts_dir / name
        if target.is_file() and target.stat().st_size == size:
            continue
        fd, tmp = tempfile.mkstemp(dir=fonts_dir, prefix=f".{name}.", suffix=".tmp")
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
        log.debug("copied %s to %s", source, target)
