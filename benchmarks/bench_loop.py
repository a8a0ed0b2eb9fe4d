"""The bare model loop: decode + detect + annotate + encode with the offline model, and nothing around it.

    python -m benchmarks.bench_loop [--quick] [--seconds 6] [--repeats 3] [--photo 100k|320k]

Each process loops ``worker.annotate.load_image`` -> ``OnnxDetector.predict`` (the offline COCO model,
yolov3-tiny at 416, as ``worker.darknet.build_offline_model`` builds it in the tests' cache) ->
``worker.annotate.annotate`` (boxes, labels, JPEG) on the benchmark photo for ``--seconds``, in three layouts,
interleaved ``--repeats`` times so that other load on the box hits all alike:

* ``1x2``: one process, ONNX Runtime with 2 intra-op threads (what one default worker slot runs on 2 cores);
* ``1x1``: one process, 1 thread;
* ``2x1``: two processes at once, 1 thread each (what ``--slots 2`` runs).

The baseline of the throughput goals is the better of ``1x2`` and ``2x1``; the bare-loop *time* (the latency
floor of one photo) is the ``1x2`` median. Writes benchmarks/results/loop.json and prints a table.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.photos import describe, photo
from benchmarks.procstat import TICK, box_cpu
from benchmarks.support import machine, ratio, summary, table, write_results

VARIANTS: tuple[tuple[str, int, int], ...] = (("1x2", 1, 2), ("1x1", 1, 1), ("2x1", 2, 1))
WARMUP_LOOPS = 5


# --- inside each loop process -----------------------------------------------------------------------------


def _child(index: int, model: str, photo: bytes, commands: Any, results: Any) -> None:
    """Build one detector per thread count on demand; run timed loops when told."""
    from worker.annotate import annotate, load_image
    from worker.onnx_detector import OnnxDetector

    detectors: dict[int, OnnxDetector] = {}
    results.put(("ready", index, os.getpid()))
    while True:
        command = commands.get()
        if command[0] == "stop":
            return
        if command[0] == "prepare":
            threads = command[1]
            if threads not in detectors:
                detectors[threads] = OnnxDetector(Path(model), threads=threads)
            for _ in range(WARMUP_LOOPS):
                image = load_image(photo, max_pixels=25_000_000)
                annotate(image, detectors[threads].predict(image))
            results.put(("prepared", index, threads))
            continue
        _, threads, seconds, start_at = command
        detector = detectors[threads]
        while (left := start_at - time.time()) > 0:
            time.sleep(min(left, 0.01))  # the start line all loop processes wait for
        rows: list[tuple[float, float, float]] = []
        found = 0
        cpu0 = time.process_time()
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            a = time.perf_counter()
            image = load_image(photo, max_pixels=25_000_000)
            b = time.perf_counter()
            detections = detector.predict(image)
            c = time.perf_counter()
            annotate(image, detections)
            d = time.perf_counter()
            rows.append((b - a, c - b, d - c))
            found = len(detections)
        end = time.perf_counter()
        cpu = time.process_time() - cpu0
        results.put(("done", index, {"start": start, "end": end, "rows": rows, "cpu_s": cpu, "detections": found}))


# --- the parent -------------------------------------------------------------------------------------------


class LoopPool:
    """Two loop processes (spawned once), driven variant by variant."""

    def __init__(self, model: Path, photo: bytes, processes: int = 2) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._results: Any = ctx.Queue()
        self._commands = [ctx.Queue() for _ in range(processes)]
        self._procs = [
            ctx.Process(target=_child, args=(i, str(model), photo, self._commands[i], self._results), daemon=True)
            for i in range(processes)
        ]
        for proc in self._procs:
            proc.start()
        self.pids = [self._expect("ready")[2] for _ in self._procs]

    def _expect(self, kind: str, timeout: float = 120.0) -> tuple[Any, ...]:
        try:
            message: tuple[Any, ...] = self._results.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"a loop process did not answer ({kind}) within {timeout:g} s") from None
        if message[0] != kind:
            raise RuntimeError(f"expected {kind}, got {message[0]}")
        return message

    def run(self, processes: int, threads: int, seconds: float) -> dict[str, Any]:
        """One timed round of ``processes`` loops with ``threads`` threads each."""
        for i in range(processes):
            self._commands[i].put(("prepare", threads))
        for _ in range(processes):
            self._expect("prepared")
        start_at = time.time() + 0.2
        for i in range(processes):
            self._commands[i].put(("run", threads, seconds, start_at))
        busy0, _ = box_cpu()
        done = [self._expect("done", timeout=seconds + 60)[2] for _ in range(processes)]
        busy1, _ = box_cpu()
        rows = [row for d in done for row in d["rows"]]
        wall = max(d["end"] for d in done) - min(d["start"] for d in done)
        ours = sum(d["cpu_s"] for d in done)
        return {
            "other_cores": max((busy1 - busy0) / TICK - ours, 0.0) / (wall + 0.2),
            "photos": len(rows),
            "seconds": wall,
            "photos_per_s": len(rows) / wall,
            "ms": [sum(row) * 1000 for row in rows],
            "stages_ms": {name: [row[i] * 1000 for row in rows] for i, name in enumerate(STAGES)},
            "cpu_ms_per_photo": sum(d["cpu_s"] for d in done) * 1000 / max(len(rows), 1),
            "detections": done[0]["detections"],
        }

    def close(self) -> None:
        for commands in self._commands:
            commands.put(("stop",))
        for proc in self._procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()


STAGES = ("decode", "detect", "annotate_encode")


def measure(photo: bytes, *, seconds: float, repeats: int, model: Path | None = None) -> dict[str, Any]:
    """Every variant, interleaved ``repeats`` times; the medians, the spread, and the baseline."""
    from benchmarks.support import offline_model

    model = model or offline_model()
    pool = LoopPool(model, photo)
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in VARIANTS}
    try:
        for _ in range(repeats):
            for name, processes, threads in VARIANTS:
                rounds[name].append(pool.run(processes, threads, seconds))
    finally:
        pool.close()
    variants: dict[str, Any] = {}
    for name, processes, threads in VARIANTS:
        runs = rounds[name]
        rates = [r["photos_per_s"] for r in runs]
        variants[name] = {
            "processes": processes,
            "threads": threads,
            "photos_per_s": round(statistics.median(rates), 2),
            "photos_per_s_runs": [round(x, 2) for x in rates],
            "ms_per_photo": summary([ms for r in runs for ms in r["ms"]], 2),
            "stages_ms_p50": {
                stage: round(statistics.median([v for r in runs for v in r["stages_ms"][stage]]), 2) for stage in STAGES
            },
            "cpu_ms_per_photo": round(statistics.median([r["cpu_ms_per_photo"] for r in runs]), 2),
            "photos": sum(r["photos"] for r in runs),
            "other_load_cores": round(statistics.median([r["other_cores"] for r in runs]), 2),
            "detections_per_photo": runs[0]["detections"],
        }
    best = max(("1x2", "2x1"), key=lambda name: variants[name]["photos_per_s"])
    return {
        "model": str(model),
        "seconds_per_round": seconds,
        "repeats": repeats,
        "variants": variants,
        "baseline_variant": best,
        "baseline_photos_per_s": variants[best]["photos_per_s"],
        "bare_ms_per_photo": variants["1x2"]["ms_per_photo"]["p50"],
    }


def baseline(*, quick: bool, model: Path | None = None) -> dict[str, Any]:
    """The bare loop on the 100 KB photo, as the other benchmarks measure it beside themselves (printed too)."""
    print("bare loop…", flush=True)
    result = measure(photo("100k"), seconds=2.0 if quick else 5.0, repeats=1 if quick else 2, model=model)
    print(loop_table(result), flush=True)
    return result


def loop_table(result: dict[str, Any]) -> str:
    rows = []
    for name, v in result["variants"].items():
        stages = v["stages_ms_p50"]
        rows.append([
            name, v["photos_per_s"], v["ms_per_photo"]["p50"], v["ms_per_photo"]["p95"], stages["decode"],
            stages["detect"], stages["annotate_encode"], v["cpu_ms_per_photo"], v["photos"], v["other_load_cores"],
        ])  # fmt: skip
    return table(
        ["procs x threads", "photos/s", "ms/photo p50", "p95", "decode", "detect", "annotate+encode",
         "CPU ms/photo", "photos", "others' load (cores)"], rows,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 s rounds, 2 repeats (about 20 s)")
    parser.add_argument("--seconds", type=float, help="seconds per round (default 6; --quick 2)")
    parser.add_argument("--repeats", type=int, help="rounds per variant (default 3; --quick 2)")
    parser.add_argument("--photo", choices=("100k", "320k"), default="100k")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    seconds = args.seconds or (2.0 if args.quick else 6.0)
    repeats = args.repeats or (2 if args.quick else 3)
    info = machine()
    started = time.time()
    result = measure(photo(args.photo), seconds=seconds, repeats=repeats)
    best = result["variants"][result["baseline_variant"]]
    path = write_results(
        "loop",
        {
            "machine": info,
            "photo": describe(args.photo),
            "quick": args.quick,
            "notes": [
                "one photo, decoded, detected, annotated and encoded again and again; no I/O, no services",
                "baseline = the better of 1x2 and 2x1; bare-loop time = the 1x2 median ms per photo",
                "CPU ms per photo = process CPU (all threads) / photos; ONNX Runtime spinning is off in OnnxDetector",
                "others' load = cores the rest of the box used meanwhile (/proc/stat busy minus the loops' CPU): "
                "the CPUs are shared with other work, and a round with others' load > 0.2 is disturbed",
            ],
            **result,
            "ratio_2x1_over_1x2": ratio(
                result["variants"]["2x1"]["photos_per_s"], result["variants"]["1x2"]["photos_per_s"]
            ),
            "bench_seconds": round(time.time() - started, 1),
        },
        args.out,
    )
    print(loop_table(result))
    print(f"\nbaseline: {result['baseline_variant']} {best['photos_per_s']} photos/s; "
          f"bare-loop time (1x2 p50) {result['bare_ms_per_photo']} ms")  # fmt: skip
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
