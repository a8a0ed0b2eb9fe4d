"""Exporting a .pt to ONNX offline: same detections as eager torch, cached, atomic."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.images import iou, rgb
from worker.detections import Detection
from worker.export import export_onnx, export_openvino, onnx_export_path
from worker.model_loader import ModelUnavailable
from worker.onnx_detector import OnnxDetector, letterbox

CONF = 1e-4  # random weights score ~1.6e-4
TOP_K = 10


def assert_match(
    reference: list[Detection], other: list[Detection], *, min_iou: float = 0.9, conf_tol: float = 0.02
) -> None:
    """The top-K reference detections each have a counterpart: same class, IoU ≥ min_iou, close conf."""
    assert reference, "no reference boxes: lower CONF"
    unused = list(other)
    for ref in reference[:TOP_K]:
        match = next((d for d in unused if d.class_id == ref.class_id and iou(d.box, ref.box) >= min_iou), None)
        assert match is not None, f"no counterpart for {ref}"
        assert abs(match.confidence - ref.confidence) <= conf_tol
        assert abs(match.confidence - ref.confidence) <= 0.02 * ref.confidence  # also relative: scores are ~1e-4
        unused.remove(match)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="module")
def exported(random_pt_model: Path, export_dir: Path) -> Path:
    """A fresh dynamic export (not the cache) so every run exercises the exporter."""
    return export_onnx(random_pt_model, export_dir, imgsz=640)


def test_export_is_cached(random_pt_model: Path, export_dir: Path, exported: Path) -> None:
    assert exported == onnx_export_path(random_pt_model, export_dir, imgsz=640)
    assert exported.name.startswith("yolo11n-random-") and exported.name.endswith("-640.onnx")
    before = exported.stat().st_mtime_ns
    lines: list[str] = []
    assert export_onnx(random_pt_model, export_dir, imgsz=640, progress=lines.append) == exported
    assert exported.stat().st_mtime_ns == before and lines == []
    assert [p.name for p in export_dir.iterdir()] == [exported.name]  # no temporary files or copies left


def test_onnx_matches_eager(random_pt_model: Path, exported: Path, sample_images: dict[str, Path]) -> None:
    from worker.ultra_detector import UltralyticsDetector

    eager = UltralyticsDetector(str(random_pt_model), conf=CONF, iou=0.45, imgsz=640, threads=2)
    ours = OnnxDetector(exported, conf=CONF, iou=0.45, threads=2, imgsz=640)
    theirs = UltralyticsDetector(str(exported), conf=CONF, iou=0.45, imgsz=640, threads=2)
    for path in sample_images.values():
        image = rgb(path)
        reference = eager.predict(image)
        assert_match(reference, ours.predict(image))
        assert_match(reference, theirs.predict(image))


def test_raw_outputs_match_eager(random_pt_model: Path, exported: Path, sample_images: dict[str, Path]) -> None:
    import onnxruntime as ort
    import torch
    from ultralytics.models.yolo.model import YOLO

    boxed, _, _ = letterbox(rgb(sample_images["bus.jpg"]), (640, 640), auto=True, stride=32)
    blob = (boxed.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255)).copy()
    net: Any = YOLO(str(random_pt_model)).model
    net.eval()
    with torch.inference_mode():
        expected = net(torch.from_numpy(blob))[0].numpy()
    got = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"]).run(None, {"images": blob})[0]
    assert got.shape == expected.shape == (1, 84, 640 * 480 // 32**2 * (1 + 4 + 16))
    assert np.abs(got[:, :4] - expected[:, :4]).max() < 0.05  # box pixels
    assert np.abs(got[:, 4:] - expected[:, 4:]).max() < 1e-6  # scores


def test_static_export_in_child_process(
    random_pt_model: Path, export_dir: Path, sample_images: dict[str, Path]
) -> None:
    static = export_onnx(random_pt_model, export_dir / "static", imgsz=320, dynamic=False, isolated=True)
    assert static.name.endswith("-320-static.onnx") and static.is_file()
    detector = OnnxDetector(static, conf=CONF, iou=0.45, threads=2)
    assert detector.imgsz == (320, 320) and not detector.batchable
    from worker.ultra_detector import UltralyticsDetector

    theirs = UltralyticsDetector(str(static), conf=CONF, iou=0.45, imgsz=320, threads=2)
    image = rgb(sample_images["zidane.jpg"])
    assert_match(theirs.predict(image), detector.predict(image), min_iou=0.99, conf_tol=0.01)


def test_missing_source_and_openvino(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="does not exist"):
        export_onnx(tmp_path / "nope.pt", tmp_path)
    if importlib.util.find_spec("openvino") is None:
        with pytest.raises(ModelUnavailable, match="openvino"):
            export_openvino(tmp_path / "nope.pt", tmp_path)
