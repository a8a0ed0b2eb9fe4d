"""A lean detector on ONNX Runtime + numpy: ultralytics-style letterbox, class-aware NMS, no torch import."""

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
    image: RGBImage, new_shape: tuple[int, int], *, auto: bool, stride: int
) -> tuple[RGBImage, tuple[float, float], tuple[int, int]]:
    """Resize keeping the aspect ratio and pad with 114, as ultralytics' ``LetterBox`` (centered)."""
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
    out = np.full((new_unpad[1] + top + bottom, new_unpad[0] + left + right, 3), _PAD_VALUE, dtype=np.uint8)
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
    offsets = (classes.astype(np.float32) * np.float32(_MAX_WH))[:, None]
    kept = nms(boxes + offsets, scores, iou)[:max_det]
    return boxes[kept], scores[kept], classes[kept]


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
    """A YOLO detector on ONNX Runtime: ultralytics exports (dynamic or fixed) and our Darknet conversion."""

    def __init__(
        self,
        path: Path,
        *,
        conf: float = 0.25,
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
        self._conf, self._iou, self._max_det = conf, iou, max_det
        self._name = name or path.stem
        meta = dict(self._session.get_modelmeta().custom_metadata_map)
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
        boxed = [letterbox(im, self._imgsz, auto=auto, stride=self._stride) for im in images]
        blob = np.stack([b[0] for b in boxed]).transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)
        if self._fixed_batch and len(images) < self._fixed_batch:  # a static batch: pad with empty images
            blob = np.concatenate([blob, np.zeros((self._fixed_batch - len(images), *blob.shape[1:]), blob.dtype)])
        (out,) = self._run(blob.astype(np.float16) if self._fp16 else blob)
        return [
            self._detections(np.asarray(pred, dtype=np.float32), gain, pad, im.shape[:2])
            for pred, (_, gain, pad), im in zip(out[: len(images)], boxed, images, strict=True)
        ]

    def _run(self, blob: Floats | npt.NDArray[np.float16]) -> list[Any]:
        """One ONNX Runtime run; the first output."""
        if self._session is None:
            raise RuntimeError(f"detector {self._name} is closed")
        return [self._session.run(None, {self._input_name: blob})[0]]

    def _detections(
        self, pred: Floats, gain: tuple[float, float], pad: tuple[int, int], shape: tuple[int, ...]
    ) -> list[Detection]:
        """Postprocess one image's output into Detections in original-image pixels."""
        nc = len(self._names) if not self._end2end and 4 + len(self._names) <= pred.shape[0] else None
        boxes, scores, classes = postprocess(
            pred, conf=self._conf, iou=self._iou, max_det=self._max_det, end2end=self._end2end, nc=nc
        )
        boxes = scale_boxes(boxes, gain, pad, (shape[0], shape[1]))
        return detections_from(boxes, scores, classes, self._names)

    def close(self) -> None:
        """Release the ONNX Runtime session."""
        self._session = None
