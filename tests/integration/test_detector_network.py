"""Loading, predicting, annotating (and exporting) never open a socket to anything but loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter: the audit hook is installed before anything of ours or ultralytics is imported.
_AUDITED = r"""
import ipaddress, json, os, socket, sys
from pathlib import Path
from typing import Any

LOOPBACK = {None, "", "localhost", "localhost.localdomain", "ip6-localhost"}
events = []


def is_loopback(host):
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def hook(event, args):
    if event == "socket.connect":
        sock, address = args[0], args[1]
        if getattr(sock, "family", None) == socket.AF_UNIX or isinstance(address, (str, bytes)):
            return
        if not is_loopback(address[0]):
            events.append([event, repr(address)])
    elif event == "socket.getaddrinfo":
        if not is_loopback(args[0]):
            events.append([event, repr(args[0])])
    elif event == "subprocess.Popen":  # e.g. ldconfig -p from ctypes.util; only installers/downloaders fail
        argv = [str(a) for a in (args[1] if isinstance(args[1], (list, tuple)) else [args[1]])]
        words = {Path(a).name for a in argv} | set(argv)
        if words & {"pip", "pip3", "curl", "wget", "git", "apt-get", "apt", "uv"}:
            events.append([event, repr(argv)[:200]])


sys.addaudithook(hook)

from worker.offline import prepare_offline_env

backend, model, data_dir, image_path = sys.argv[1:5]
if backend == "probe":  # the hook itself must see a lookup and a connection
    for target in (("example.com", 80), ("192.0.2.1", 80)):
        try:
            socket.create_connection(target, timeout=0.2).close()
        except OSError:
            pass
    print(json.dumps({"events": events}))
    sys.exit(0)
prepare_offline_env(Path(data_dir) / "ultralytics")
from worker.annotate import annotate, load_image
from worker.model_loader import load_detector

detector = load_detector(model, data_dir=Path(data_dir), conf=0.25 if backend == "onnx" else 1e-4, iou=0.45,
                         imgsz=None, threads=2, allow_download=False)
image = load_image(Path(image_path).read_bytes(), max_pixels=25_000_000)
found = detector.predict(image)
jpeg = annotate(image, found)
if backend == "ultralytics":
    from worker.export import export_onnx

    export_onnx(model, Path(data_dir) / "exported", imgsz=320)
print(json.dumps({"events": events, "found": len(found), "jpeg": len(jpeg),
                  "torch": "torch" in sys.modules}))
"""


def run_audited(backend: str, model: str, data_dir: Path, image: Path, tmp_path: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOLO_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-c", _AUDITED, backend, model, str(data_dir), str(image)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_the_audit_sees_sockets(tmp_path: Path) -> None:
    events = run_audited("probe", "-", tmp_path, tmp_path, tmp_path)["events"]
    assert ["socket.getaddrinfo", "'example.com'"] in events
    assert any(e[0] == "socket.connect" and "192.0.2.1" in e[1] for e in events)


@pytest.mark.parametrize("spec", ["offline-nanodet", "offline-coco"])
def test_onnx_path_stays_offline(
    spec: str,
    models_cache: Path,
    offline_model_path: Path,
    nanodet_model_path: Path,
    sample_images: dict[str, Path],
    tmp_path: Path,
) -> None:
    result = run_audited("onnx", spec, models_cache, sample_images["bus.jpg"], tmp_path)
    assert result["events"] == []
    assert result["found"] >= 4 and result["torch"] is False


def test_ultralytics_path_stays_offline(random_pt_model: Path, sample_images: dict[str, Path], tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = run_audited("ultralytics", str(random_pt_model), data_dir, sample_images["zidane.jpg"], tmp_path)
    assert result["events"] == []
    assert result["found"] and result["torch"] is True
    assert list((data_dir / "exported").glob("*.onnx"))
