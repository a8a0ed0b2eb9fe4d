"""Export .pt / .yaml models to ONNX (or OpenVINO) offline with ultralytics, cached by the source's sha256."""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from worker.errors import ModelUnavailable
from worker.model_specs import Progress, no_progress, offline_message
from worker.offline import prepare_offline_env

log = logging.getLogger(__name__)

_MODEL_ERROR_EXIT = 3  # the child exited with a ModelUnavailable: its last stderr line is the message


def _sha12(path: Path) -> str:
    """First 12 hex digits of the file's sha256."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def _is_yaml(model: str | Path) -> bool:
    """Whether the spec names a model architecture (random weights)."""
    return str(model).lower().endswith((".yaml", ".yml"))


def _ensure_env(cache_dir: Path) -> None:
    """Offline hygiene before ultralytics is imported here (a no-op for variables already set)."""
    prepare_offline_env(cache_dir / "ultralytics-config")


def source_weights(model: str | Path, cache_dir: Path, *, progress: Progress = no_progress) -> Path:
    """The .pt to export: ``model`` itself, or a ``.yaml`` architecture built once and saved in the cache."""
    if not _is_yaml(model):
        path = Path(model).expanduser()
        if not path.is_file():
            raise ModelUnavailable(f"model file {str(model)!r} does not exist")
        return path
    target = cache_dir / f"{Path(model).stem}-random.pt"
    if target.is_file():
        return target
    progress(f"building {Path(model).name} with random weights…")
    _ensure_env(cache_dir)
    from ultralytics.models.yolo.model import YOLO

    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as tmp:
        tmp_pt = Path(tmp) / target.name
        try:
            YOLO(str(model), task="detect").save(tmp_pt)
        except Exception as exc:
            raise ModelUnavailable(f"could not build {str(model)!r}: {_summary(exc)}") from exc
        os.replace(tmp_pt, target)
    return target


def fetch_weights(path: Path, *, progress: Progress = no_progress) -> Path:
    """Download an ultralytics release asset (``…/yolo11n.pt``) to ``path`` unless it is there already."""
    if path.is_file():
        return path
    progress(f"downloading {path.name}…")
    _ensure_env(path.parent)
    from ultralytics.utils.downloads import attempt_download_asset

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        attempt_download_asset(str(path))
    except ConnectionError as exc:
        raise ModelUnavailable(offline_message(path.name)) from exc
    except Exception as exc:
        raise ModelUnavailable(f"could not download {path.name!r}: {_summary(exc)}") from exc
    if not path.is_file():
        raise ModelUnavailable(f"model {path.name!r} is neither on this machine nor an ultralytics release asset")
    return path


def onnx_export_path(source: Path, cache_dir: Path, *, imgsz: int = 640, dynamic: bool = True) -> Path:
    """Where the ONNX export of a .pt is cached: ``<stem>-<sha12>-<imgsz>[-static].onnx``."""
    return cache_dir / f"{source.stem}-{_sha12(source)}-{imgsz}{'' if dynamic else '-static'}.onnx"


def export_onnx(
    model: str | Path,
    cache_dir: Path,
    *,
    imgsz: int = 640,
    dynamic: bool = True,
    progress: Progress = no_progress,
    isolated: bool = False,
    download: bool = False,
) -> Path:
    """Export ``model`` (.pt or .yaml) to ONNX once (``isolated``: in a child; ``download``: fetch it first)."""
    # isolated: this process never imports torch (worker RSS); download: a missing ultralytics release asset
    # such as <data_dir>/models/yolo11n.pt is fetched to that path first.
    if isolated and not _is_yaml(model):
        path = Path(model).expanduser()
        if path.is_file():
            target = onnx_export_path(path, cache_dir, imgsz=imgsz, dynamic=dynamic)
            if target.is_file():
                return target
        elif not download:
            raise ModelUnavailable(f"model file {str(model)!r} does not exist")
        return _export_in_child(path, cache_dir, imgsz=imgsz, dynamic=dynamic, download=download, progress=progress)
    if download:
        fetch_weights(Path(model).expanduser(), progress=progress)
    source = source_weights(model, cache_dir, progress=progress)
    target = onnx_export_path(source, cache_dir, imgsz=imgsz, dynamic=dynamic)
    if target.is_file():
        return target
    progress(f"exporting {source.name} to ONNX ({imgsz} px)…")
    _export(source, target, format="onnx", imgsz=imgsz, dynamic=dynamic, simplify=True)
    progress(f"done: {target}")
    return target


def export_openvino(model: str | Path, cache_dir: Path, *, imgsz: int = 640, progress: Progress = no_progress) -> Path:
    """Export ``model`` (.pt or .yaml) to an OpenVINO folder once (needs the ``openvino`` package)."""
    if importlib.util.find_spec("openvino") is None:
        raise ModelUnavailable(
            "OpenVINO export needs the 'openvino' package, which is not installed here; use ONNX instead"
        )
    source = source_weights(model, cache_dir, progress=progress)
    target = cache_dir / f"{source.stem}-{_sha12(source)}-{imgsz}_openvino_model"
    if target.is_dir():
        return target
    progress(f"exporting {source.name} to OpenVINO ({imgsz} px)…")
    _export(source, target, format="openvino", imgsz=imgsz)
    progress(f"done: {target}")
    return target


def _export(source: Path, target: Path, **kwargs: Any) -> None:
    """Run ultralytics' exporter on a private copy of ``source``; move the result to ``target`` atomically."""
    _ensure_env(target.parent)
    from ultralytics.models.yolo.model import YOLO

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        work = Path(tmp) / f"{source.stem}.pt"  # ultralytics writes its output beside its input
        shutil.copyfile(source, work)
        try:
            with warnings.catch_warnings():
                # ultralytics deliberately uses torch's TorchScript-based ONNX exporter (dynamo=False),
                # which torch flags with DeprecationWarnings ("legacy TorchScript-based ONNX export", "The
                # feature will be removed"): not ours to fix, and errors under -W error.
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                produced = YOLO(str(work), task="detect").export(**kwargs)
        except Exception as exc:
            raise ModelUnavailable(f"could not export {source.name} to {kwargs['format']}: {_summary(exc)}") from exc
        os.replace(produced, target)
    log.info("exported %s to %s", source, target)


def _export_in_child(
    source: Path, cache_dir: Path, *, imgsz: int, dynamic: bool, download: bool, progress: Progress
) -> Path:
    """Export in a child process so this one never imports torch (keeps the worker's RSS low)."""
    progress(f"exporting {source.name} to ONNX ({imgsz} px) in a child process…")
    cmd = [sys.executable, "-m", "worker.export", str(source), str(cache_dir), "--imgsz", str(imgsz)]
    cmd += ["--static"] * (not dynamic) + ["--download"] * download
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelUnavailable(f"could not export {source.name} to ONNX: {exc}") from exc
    errors = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    if proc.returncode == _MODEL_ERROR_EXIT and errors:
        raise ModelUnavailable(errors[-1])  # the child's own one-sentence ModelUnavailable
    target = onnx_export_path(source, cache_dir, imgsz=imgsz, dynamic=dynamic) if source.is_file() else None
    if proc.returncode != 0 or target is None or not target.is_file():
        raise ModelUnavailable(
            f"could not export {source.name} to ONNX: {errors[-1] if errors else 'the child failed'}"
        )
    progress(f"done: {target}")
    return target


def _summary(exc: BaseException) -> str:
    """The first line of an exception's message, without ultralytics' emoji."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text.replace("❌", "").strip()[:300]


def main(argv: list[str] | None = None) -> int:
    """``python -m worker.export MODEL CACHE_DIR [--imgsz N] [--static] [--download]``: print the ONNX path."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("model")
    parser.add_argument("cache_dir", type=Path)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--static", action="store_true")
    parser.add_argument("--download", action="store_true", help="fetch a missing ultralytics release asset first")
    args = parser.parse_args(argv)
    try:
        path = export_onnx(
            args.model, args.cache_dir, imgsz=args.imgsz, dynamic=not args.static, download=args.download
        )
    except ModelUnavailable as exc:
        sys.stderr.write(f"{exc}\n")
        return _MODEL_ERROR_EXIT
    sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
