"""A lean detector on ONNX Runtime + numpy: ultralytics-style letterbox, YOLO and GFL (NanoDet) heads, class-aware
NMS, no torch import."""

from __future__ import annotations

import ast
import logging
import math
import mmap
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from worker.detections import Detection, RGBImage, detections_from
from worker.model_specs import DEFAULT_CONF

log = logging.getLogger(__name__)

Floats = npt.NDArray[np.float32]
_PAD_VALUE = 114
_MAX_WH = 7680  # per-class box offset for class-aware NMS (ultralytics' max_wh)
_MAX_NMS = 30000  # boxes kept before NMS (ultralytics' max_nms)


# --- ONNX metadata without onnx or a session ----------------------------------------------------------


def _varint(buf: Any, i: int) -> tuple[int, int]:
    """Decode a protobuf varint at ``i``; return (value, next offset)."""
    value = shift = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


def _fields(buf: Any, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """Yield (field number, start, end) of each length-delimited field in ``buf[start:end]``."""
    i = start
    while i < end:
        tag, i = _varint(buf, i)
        wire = tag & 7
        if wire == 0:
            _, i = _varint(buf, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            length, i = _varint(buf, i)
            if i + length > end:
                raise ValueError("truncated protobuf field")
            yield tag >> 3, i, i + length
            i += length
        else:
            raise ValueError(f"unexpected protobuf wire type {wire}")


def read_onnx_metadata(path: Path) -> dict[str, str]:
    """An ONNX file's ``metadata_props`` (ModelProto field 14), scanned without loading the model."""
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        meta: dict[str, str] = {}
        for number, start, end in _fields(buf, 0, len(buf)):
            if number != 14:
                continue
            entry = {n: buf[s:e].decode("utf-8") for n, s, e in _fields(buf, start, end)}
            meta[entry.get(1, "")] = entry.get(2, "")
        return meta


# --- pre- and post-processing (ultralytics-compatible) ------------------------------------------------


def letterbox(
    image: RGBImage, new_shape: tuple[int, int], *, auto: bool, stride: int, pad_value: int = _PAD_VALUE
) -> tuple[RGBImage, tuple[float, float], tuple[int, int]]:
    """Resize keeping the aspect ratio and pad (grey 114), as ultralytics' ``LetterBox`` (centered)."""
    h, w = image.shape[:2]
    r = min(new_shape[0] / h, new_shape[1] / w)
    new_unpad = (max(round(w * r), 1), max(round(h * r), 1))
    dw, dh = new_shape[1] - new_unpad[0], new_shape[0] - new_unpad[1]
    if auto:  # minimum rectangle
        dw, dh = dw % stride, dh % stride
    top, bottom = round(dh / 2 - 0.1), round(dh / 2 + 0.1)
    left, right = round(dw / 2 - 0.1), round(dw / 2 + 0.1)
    if (w, h) != new_unpad:
        image = _resize(image, new_unpad)
    out = np.full((new_unpad[1] + top + bottom, new_unpad[0] + left + right, 3), pad_value, dtype=np.uint8)
    out[top : top + new_unpad[1], left : left + new_unpad[0]] = image
    return out, (new_unpad[0] / w, new_unpad[1] / h), (left, top)


def _resize(image: RGBImage, size: tuple[int, int]) -> RGBImage:
    """Bilinear resize as OpenCV's INTER_LINEAR (what ultralytics uses); PIL if OpenCV is not installed."""
    try:
        import cv2
    except ImportError:  # pragma: no cover - the worker extra installs opencv via ultralytics
        from PIL import Image

        return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR), dtype=np.uint8)
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_LINEAR), dtype=np.uint8)


def nms(boxes: Floats, scores: Floats, iou_threshold: float) -> npt.NDArray[np.intp]:
    """Greedy NMS as torchvision's (stable descending order, suppress IoU > threshold); kept indices."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(np.float32(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(np.float32(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[~(iou > iou_threshold)]
    return np.asarray(keep, dtype=np.intp)


def postprocess(
    pred: Floats, *, conf: float, iou: float, max_det: int, end2end: bool, nc: int | None = None
) -> tuple[Floats, Floats, npt.NDArray[np.intp]]:
    """One image's raw output → (xyxy boxes in input pixels, scores, class ids), as ultralytics' NMS."""
    # pred: (4 + nc [+ extra], N) with cx, cy, w, h; or, end-to-end, (N, 6 [+ extra]) already suppressed.
    if end2end:
        rows = pred[pred[:, 4] > conf][:max_det]
        return rows[:, :4].astype(np.float32), rows[:, 4].astype(np.float32), rows[:, 5].astype(np.intp)
    nc = pred.shape[0] - 4 if nc is None else nc
    cls_scores = pred[4 : 4 + nc]
    best = cls_scores.argmax(0)
    best_conf = np.take_along_axis(cls_scores, best[None], 0)[0]
    keep = best_conf > conf
    xywh, scores, classes = pred[:4, keep].T, best_conf[keep], best[keep]
    if scores.size > _MAX_NMS:
        top = np.argsort(-scores, kind="stable")[:_MAX_NMS]
        xywh, scores, classes = xywh[top], scores[top], classes[top]
    half = xywh[:, 2:] / 2
    boxes = np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1)
    return class_nms(boxes, scores, classes, iou=iou, max_det=max_det)


def class_nms(
    boxes: Floats, scores: Floats, classes: npt.NDArray[np.intp], *, iou: float, max_det: int
) -> tuple[Floats, Floats, npt.NDArray[np.intp]]:
    """Class-aware NMS (boxes of different classes never suppress each other); the kept ones, best first."""
    offsets = (classes.astype(np.float32) * np.float32(_MAX_WH))[:, None]
    kept = nms(boxes + offsets, scores, iou)[:max_det]
    return boxes[kept], scores[kept], classes[kept]


def gfl_priors(imgsz: tuple[int, int], strides: Sequence[int]) -> Floats:
    """(N, 3) cell centres (x, y) in input pixels and each cell's stride, stride by stride, row-major.

    NanoDet's GFL head (v0.x) measures its distances from the centre of each cell, ``(i + 0.5) * stride``.
    """
    parts = []
    for stride in strides:
        h, w = math.ceil(imgsz[0] / stride), math.ceil(imgsz[1] / stride)
        ys, xs = np.divmod(np.arange(h * w, dtype=np.float32), np.float32(w))
        parts.append(np.stack([(xs + 0.5) * stride, (ys + 0.5) * stride, np.full_like(xs, stride)], axis=1))
    return np.concatenate(parts).astype(np.float32)


def decode_gfl(
    scores: Floats, distributions: Floats, priors: Floats, *, conf: float, iou: float, max_det: int
) -> tuple[Floats, Floats, npt.NDArray[np.intp]]:
    """One image's GFL outputs -> (xyxy boxes in input pixels, scores, class ids).

    ``scores`` (N, nc) are sigmoid class scores; ``distributions`` (N, 4 * bins) the logits of each edge's
    distance from the cell centre, in strides: the distance is the softmax's expectation over 0 .. bins - 1.
    Each cell keeps its best class; only cells above ``conf`` are decoded.
    """
    best = scores.argmax(1)
    best_conf = np.take_along_axis(scores, best[:, None], 1)[:, 0]
    keep = np.flatnonzero(best_conf > conf)
    if keep.size > _MAX_NMS:
        keep = keep[np.argsort(-best_conf[keep], kind="stable")[:_MAX_NMS]]
    bins = distributions.shape[1] // 4
    logits = distributions[keep].reshape(-1, 4, bins)
    weights = np.exp(logits - logits.max(axis=2, keepdims=True))
    distance = (weights @ np.arange(bins, dtype=np.float32)) / weights.sum(axis=2)  # (k, 4) in strides
    distance *= priors[keep, 2:3]
    centre = priors[keep, :2]
    boxes = np.concatenate([centre - distance[:, :2], centre + distance[:, 2:]], axis=1).astype(np.float32)
    return class_nms(boxes, best_conf[keep], best[keep].astype(np.intp), iou=iou, max_det=max_det)


def scale_boxes(boxes: Floats, gain: tuple[float, float], pad: tuple[int, int], shape: tuple[int, int]) -> Floats:
    """Map boxes from the letterboxed input back onto the original (h, w) image, clipped to it."""
    out = boxes.copy()
    out[:, [0, 2]] = ((out[:, [0, 2]] - pad[0]) / np.float32(gain[0])).clip(0, shape[1])
    out[:, [1, 3]] = ((out[:, [1, 3]] - pad[1]) / np.float32(gain[1])).clip(0, shape[0])
    return out


def _literal(meta: Mapping[str, str], key: str) -> Any:
    """A metadata value written as a Python literal, or None."""
    try:
        return ast.literal_eval(meta[key]) if key in meta else None
    except (ValueError, SyntaxError):
        return None


# --- the detector -------------------------------------------------------------------------------------


class OnnxDetector:
    """A detector on ONNX Runtime: ultralytics exports (dynamic or fixed), our Darknet and NanoDet conversions."""

    def __init__(
        self,
        path: Path,
        *,
        conf: float | None = None,
        iou: float = 0.45,
        threads: int,
        max_det: int = 300,
        imgsz: int | None = None,
        name: str | None = None,
    ) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        # ORT's worker threads spin-wait between runs by default: ~40 % more CPU for the same speed here
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session: Any = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self._name = name or path.stem
        meta = dict(self._session.get_modelmeta().custom_metadata_map)
        # None: the threshold the model's makers recommend, where its metadata says one (NanoDet: 0.35)
        self._conf = conf if conf is not None else float(meta.get("conf", DEFAULT_CONF))
        self._iou, self._max_det = iou, max_det
        inp = self._session.get_inputs()[0]
        self._input_name = inp.name
        self._fp16 = "float16" in inp.type
        batch, _c, height, width = inp.shape
        self._batchable = not isinstance(batch, int)
        self._stride = int(meta.get("stride", 32))
        self._dynamic = not (isinstance(height, int) and isinstance(width, int))
        self._imgsz = self._pick_imgsz(meta, height, width, imgsz)
        args = _literal(meta, "args") or {}
        self._end2end = bool(_literal(meta, "end2end")) or bool(args.get("nms"))
        self._names = self._pick_names(meta)
        self._fixed_batch = batch if isinstance(batch, int) and batch > 1 else None  # exported with batch=N
        self._pad_value = int(meta.get("letterbox_pad", _PAD_VALUE))  # NanoDet was trained on black borders
        self._priors = gfl_priors(self._imgsz, _literal(meta, "strides")) if meta.get("head") == "GFL" else None
        task = meta.get("task", "detect")
        if task not in {"detect", "segment", "pose"}:
            raise ValueError(f"{path.name} is a {task} model, not a detector")
        if not self._end2end and self._session.get_outputs()[0].shape[-1] == 6:
            self._end2end = True  # (batch, max_det, 6) without metadata: an NMS-included export
        log.info("loaded %s (%s classes, imgsz %s, %s)", path, len(self._names), self._imgsz,
                 "dynamic" if self._dynamic else "fixed")  # fmt: skip

    def _pick_imgsz(self, meta: Mapping[str, str], height: Any, width: Any, imgsz: int | None) -> tuple[int, int]:
        """Fixed: the input shape; dynamic: ``imgsz`` (else the export size) rounded up to the stride."""
        if not self._dynamic:
            return int(height), int(width)
        size: Any = imgsz if imgsz is not None else (_literal(meta, "imgsz") or 640)
        h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[-1]))
        return (
            max(math.ceil(h / self._stride), 1) * self._stride,
            max(math.ceil(w / self._stride), 1) * self._stride,
        )

    def _pick_names(self, meta: Mapping[str, str]) -> dict[int, str]:
        """Class names from the metadata, else numbered from the output's channel count."""
        names = _literal(meta, "names")
        if isinstance(names, dict):
            return {int(k): str(v) for k, v in names.items()}
        if isinstance(names, list):
            return {i: str(v) for i, v in enumerate(names)}
        channels = self._session.get_outputs()[0].shape[1]
        return {i: str(i) for i in range(channels - 4 if isinstance(channels, int) else 80)}

    @property
    def name(self) -> str:
        """The model name given at construction (default: the file's stem)."""
        return self._name

    @property
    def names(self) -> Mapping[int, str]:
        """Class id → label."""
        return self._names

    @property
    def conf(self) -> float:
        """The confidence threshold in use."""
        return self._conf

    def use_threshold(self, conf: float) -> float:
        """Keep detections down to ``conf`` from now on; return the threshold before."""
        before, self._conf = self._conf, conf
        return before

    @property
    def imgsz(self) -> tuple[int, int]:
        """Inference size (h, w): the letterbox target."""
        return self._imgsz

    @property
    def batchable(self) -> bool:
        """Whether the model takes more than one image per run."""
        return self._batchable

    def predict(self, image: RGBImage) -> list[Detection]:
        """Detect objects in one RGB image. Blocking; call it from an executor."""
        return self.predict_batch([image])[0]

    def predict_batch(self, images: Sequence[RGBImage]) -> list[list[Detection]]:
        """Detect objects in several images: one run if the batch is dynamic, else one run per image."""
        if not self._batchable and len(images) > (self._fixed_batch or 1):
            step = self._fixed_batch or 1
            return [dets for i in range(0, len(images), step) for dets in self.predict_batch(images[i : i + step])]
        auto = self._dynamic and len({im.shape for im in images}) == 1
        boxed = [letterbox(im, self._imgsz, auto=auto, stride=self._stride, pad_value=self._pad_value) for im in images]
        blob = np.stack([b[0] for b in boxed]).transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)
        if self._fixed_batch and len(images) < self._fixed_batch:  # a static batch: pad with empty images
            blob = np.concatenate([blob, np.zeros((self._fixed_batch - len(images), *blob.shape[1:]), blob.dtype)])
        outputs = self._run(blob.astype(np.float16) if self._fp16 else blob)
        return [
            self._detections([np.asarray(out[i], dtype=np.float32) for out in outputs], gain, pad, im.shape[:2])
            for i, ((_, gain, pad), im) in enumerate(zip(boxed, images, strict=True))
        ]

    def _run(self, blob: Floats | npt.NDArray[np.float16]) -> list[Any]:
        """One ONNX Runtime run: every output for a GFL head (scores, distributions), else the first."""
        if self._session is None:
            raise RuntimeError(f"detector {self._name} is closed")
        outputs: list[Any] = self._session.run(None, {self._input_name: blob})
        return outputs if self._priors is not None else outputs[:1]

    def _detections(
        self, outputs: list[Floats], gain: tuple[float, float], pad: tuple[int, int], shape: tuple[int, ...]
    ) -> list[Detection]:
        """Postprocess one image's outputs into Detections in original-image pixels."""
        if self._priors is not None:
            scores, distributions = outputs
            boxes, confs, classes = decode_gfl(
                scores, distributions, self._priors, conf=self._conf, iou=self._iou, max_det=self._max_det
            )
        else:
            pred = outputs[0]
            nc = len(self._names) if not self._end2end and 4 + len(self._names) <= pred.shape[0] else None
            boxes, confs, classes = postprocess(
                pred, conf=self._conf, iou=self._iou, max_det=self._max_det, end2end=self._end2end, nc=nc
            )
        boxes = scale_boxes(boxes, gain, pad, (shape[0], shape[1]))
        return detections_from(boxes, confs, classes, self._names)

    def close(self) -> None:
        """Release the ONNX Runtime session."""
        self._session = None
