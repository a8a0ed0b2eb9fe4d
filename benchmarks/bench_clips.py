"""GIFs and short clips: the bare clip loop beside the bare photo loop, in one process, in the same run.

    python -m benchmarks.bench_clips [--quick] [--rounds 3] [--threads 2] [--long]

The clip is the acceptance test's: bus.jpg seen through a 640x480 window panning left to right, 3 s at 10 fps,
as a GIF (what Discord gets) and as an H.264 MP4 (what Telegram sends for a GIF). Each round runs, one after the
other in this process with one ONNX Runtime session (the offline COCO model, ``--threads`` intra-op threads):

* ``photo``: the bare photo loop of ``bench_loop`` (decode + detect + annotate + JPEG) on the 100 KB photo, for a
  few seconds;
* ``telegram``: the MP4 through ``worker.clips.pipeline.run_clip``, answered as MP4 (``sendAnimation``);
* ``discord``: the GIF, answered with the smaller of GIF and MP4;
* ``gif out``: the GIF, answered as a GIF (what the encoder costs when a GIF is wanted);
* ``slot``: the MP4 through an inference slot (``InferencePool.detect_clip``: its own process and model, the clip
  and the animation pickled across, progress polled): the whole time one clip holds a slot.

Rounds are interleaved so that other load on the box hits all alike. ``--long`` adds the worst clip the limits
allow, 60 s of 1080p at 30 fps (1,800 frames to decode, 120 sampled), in this process and in the slot, and the
slot's peak memory after it. Writes benchmarks/results/clips.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from benchmarks.photos import describe, photo, synthetic
from benchmarks.procstat import TICK, box_cpu, cpu_seconds, memory_kb
from benchmarks.support import machine, offline_model, ratio, summary, table, write_results

CLIP_PHASES = ("probe", "decode", "detect", "draw", "encode")
PHOTO_STAGES = ("decode", "detect", "annotate_encode")


def bus() -> Image.Image:
    """bus.jpg (from the installed ultralytics or PyPI once), else a synthetic picture of the same size."""
    from detectbot.samples import SamplesUnavailable, sample_photos
    from tests.conftest_models import cache_dir

    try:
        path = next(p for p in sample_photos(cache_dir()) if p.name == "bus.jpg")
    except SamplesUnavailable:
        return synthetic(7).resize((810, 1080))
    with Image.open(path) as image:
        return image.convert("RGB")


def clips(*, long: bool) -> dict[str, bytes]:
    from tests.clips import gif, panning, panning_frames, video

    frames = panning(bus(), seconds=3.0, fps=10)
    made = {"gif": gif(frames, fps=10), "mp4": video(frames, fps=10, preset="medium")}
    if long:  # made frame by frame: 1,800 frames of 1080p would be 11 GB at once
        big = bus().resize((1920, 2560), Image.Resampling.BICUBIC)
        long_frames = panning_frames(big, seconds=60.0, fps=30, size=(1920, 1080))
        made[LONG] = video(long_frames, fps=30, preset="veryfast")
    return made


LONG = "mp4_60s_1080p"
VARIANTS: dict[str, tuple[str, str]] = {
    "telegram": ("mp4", "mp4"),
    "discord": ("gif", "smallest"),
    "gif out": ("gif", "gif"),
}


# --- the loops ------------------------------------------------------------------------------------------


def photo_round(detector: Any, data: bytes, seconds: float) -> list[tuple[float, float, float]]:
    from worker.annotate import annotate, load_image

    rows = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        a = time.perf_counter()
        image = load_image(data, max_pixels=25_000_000)
        b = time.perf_counter()
        found = detector.predict(image)
        c = time.perf_counter()
        annotate(image, found)
        rows.append((b - a, c - b, time.perf_counter() - c))
    return rows


def clip_run(detector: Any, data: bytes, prefer: str, *, threads: int, deadline_s: float = 600.0) -> dict[str, Any]:
    from queue_gateway.public.clips import ClipOptions
    from worker.clips.pipeline import run_clip

    options = ClipOptions(prefer=prefer)  # type: ignore[arg-type]
    result = run_clip(detector, data, options=options, deadline_s=deadline_s, threads=threads)
    return {
        "ms": result.timings_ms["total"],
        "phases_ms": {phase: result.timings_ms.get(phase, 0.0) for phase in CLIP_PHASES},
        "frames": len(result.frames),
        "distinct_frames": result.detected,
        "output": result.content_type,
        "output_bytes": len(result.animation),
        "output_size": [result.width, result.height],
        "summary": result.summary,
    }


def timed(function: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall s, others' cores): what the rest of the box used meanwhile, beside this process's CPU."""
    busy0, _ = box_cpu()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = function()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    busy1, _ = box_cpu()
    return result, wall, max((busy1 - busy0) / TICK - cpu, 0.0) / max(wall, 1e-9)


def measure(*, rounds: int, photo_seconds: float, clip_runs: int, threads: int, long: bool) -> dict[str, Any]:
    from worker.onnx_detector import OnnxDetector

    model = offline_model()
    detector = OnnxDetector(model, threads=threads)
    inputs = clips(long=long)
    data = photo("100k")
    photo_round(detector, data, 1.0)  # warm-up
    for source, prefer in VARIANTS.values():
        clip_run(detector, inputs[source], prefer, threads=threads)
    photo_rows: list[tuple[float, float, float]] = []
    clip_rows: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    others: list[float] = []
    with asyncio.Runner() as runner, tempfile.TemporaryDirectory(prefix="bench-clips-") as tmp:
        slot = Slot(runner, model, Path(tmp), threads=threads)
        try:
            slot.warm(data, inputs["mp4"])
            for _ in range(rounds):
                rows, _, load = timed(lambda: photo_round(detector, data, photo_seconds))
                photo_rows += rows
                others.append(load)
                for name, (source, prefer) in VARIANTS.items():
                    for _ in range(clip_runs):
                        run, _, load = timed(
                            lambda s=source, p=prefer: clip_run(detector, inputs[s], p, threads=threads)
                        )
                        clip_rows[name].append(run)
                        others.append(load)
                for _ in range(clip_runs):
                    others.append(slot.clip(inputs["mp4"]))
            slot_result = slot.report(inputs.get(LONG))
        finally:
            slot.close()
    photo_ms = [sum(row) * 1000 for row in photo_rows]
    photo_p50 = statistics.median(photo_ms)
    result: dict[str, Any] = {
        "model": str(model),
        "threads": threads,
        "photo": {
            "photos": len(photo_rows),
            "ms_per_photo": summary(photo_ms, 2),
            "stages_ms_p50": {
                stage: round(statistics.median(row[i] * 1000 for row in photo_rows), 2)
                for i, stage in enumerate(PHOTO_STAGES)
            },
        },
        "clips": {name: clip_summary(runs, photo_p50) for name, runs in clip_rows.items()},
        "slot": slot_result,
        "inputs": {name: describe_clip(data) for name, data in inputs.items()},
        "other_load_cores_p50": round(statistics.median(others), 2),
    }
    if long:
        runs = [clip_run(detector, inputs[LONG], "mp4", threads=threads) for _ in range(1 if rounds < 3 else 2)]
        result["clips"]["60 s 1080p mp4"] = clip_summary(runs, photo_p50)
    detector.close()
    return result


def clip_summary(runs: list[dict[str, Any]], photo_ms_p50: float) -> dict[str, Any]:
    total = statistics.median(run["ms"] for run in runs)
    frames = runs[0]["frames"]
    phases = {phase: round(statistics.median(run["phases_ms"][phase] for run in runs), 1) for phase in CLIP_PHASES}
    per_frame = {phase: round(ms / frames, 2) for phase, ms in phases.items()}
    return {
        "runs": len(runs),
        "ms_per_clip": summary([run["ms"] for run in runs], 1),
        "frames": frames,
        "distinct_frames": runs[0]["distinct_frames"],
        "phases_ms_p50": phases,
        "ms_per_frame": round(total / frames, 2),
        "ms_per_frame_by_phase": per_frame,
        "encode_share": ratio(phases["encode"], total),
        "frame_over_photo": ratio(total / frames, photo_ms_p50),
        "output": runs[0]["output"],
        "output_bytes": runs[0]["output_bytes"],
        "output_size": runs[0]["output_size"],
        "summary": runs[0]["summary"],
    }


def describe_clip(data: bytes) -> dict[str, Any]:
    from queue_gateway.public.clipprobe import probe

    info = probe(data)
    return {
        "container": info.container, "codec": info.codec, "size": [info.width, info.height],
        "duration_s": info.duration_s, "frames": info.frames, "bytes": info.bytes,
    }  # fmt: skip


class Slot:
    """One inference slot (``InferencePool.detect_clip``), as the worker runs a clip: its own process, the clip
    and the animation pickled across, progress polled. Its peak memory is read after a photo, after the 3 s
    clips and after the 60 s 1080p clip."""

    def __init__(self, runner: asyncio.Runner, model: Path, data_dir: Path, *, threads: int) -> None:
        from worker.inference import DetectorSpec, InferencePool

        self._runner = runner
        self._pool = InferencePool(DetectorSpec(model=str(model), data_dir=data_dir, threads=threads), 1, timeout_s=120)
        runner.run(self._pool.start())
        [self._pid] = self._pool.pids
        self.walls: list[float] = []
        self.reports: list[int] = []
        self.inside: list[float] = []  # run_clip's own total, inside the slot
        self.peaks: dict[str, float] = {}

    def warm(self, photo_data: bytes, clip: bytes) -> None:
        from worker.inference import ClipJob, Job

        self._runner.run(self._pool.detect(Job(photo_data)))
        self.peaks["after_a_photo"] = memory_kb(self._pid)[1] / 1024
        self._runner.run(self._pool.detect_clip(ClipJob(clip)))  # the slot imports PyAV

    def clip(self, data: bytes) -> float:
        """One clip; what the rest of the box used meanwhile (cores), beside the slot and this process."""
        from worker.inference import ClipJob

        progress: list[tuple[int, int]] = []
        busy0, _ = box_cpu()
        ours0 = (cpu_seconds(self._pid, reaped=False) or 0.0) + time.process_time()
        started = time.perf_counter()
        job = self._pool.detect_clip(ClipJob(data), on_progress=lambda *numbers: progress.append(numbers))
        result = self._runner.run(job)
        wall = time.perf_counter() - started
        self.inside.append(result.timings_ms["total"])
        ours = (cpu_seconds(self._pid, reaped=False) or 0.0) + time.process_time() - ours0
        busy1, _ = box_cpu()
        self.walls.append(wall * 1000)
        self.reports.append(len(progress))
        return max((busy1 - busy0) / TICK - ours, 0.0) / max(wall, 1e-9)

    def report(self, long: bytes | None) -> dict[str, Any]:
        from worker.inference import ClipJob

        self.peaks["after_3s_clips"] = memory_kb(self._pid)[1] / 1024
        out: dict[str, Any] = {
            "runs": len(self.walls),
            "ms_per_clip": summary(self.walls, 1),
            "ms_inside_the_slot_p50": round(statistics.median(self.inside), 1),
            "progress_reports_per_clip_p50": statistics.median(self.reports),
        }
        if long is not None:
            started = time.perf_counter()
            self._runner.run(self._pool.detect_clip(ClipJob(long)))
            out["ms_60s_1080p_clip"] = round((time.perf_counter() - started) * 1000, 1)
            self.peaks["after_60s_1080p_clip"] = memory_kb(self._pid)[1] / 1024
        out["slot_peak_rss_mb"] = {name: round(mb, 1) for name, mb in self.peaks.items()}
        return out

    def close(self) -> None:
        self._runner.run(self._pool.close())


# --- output ---------------------------------------------------------------------------------------------


def report(result: dict[str, Any]) -> str:
    p, stages = result["photo"], result["photo"]["stages_ms_p50"]
    rows = [[
        "photo (bare loop)", "1 photo", p["ms_per_photo"]["p50"], p["ms_per_photo"]["p50"], stages["decode"],
        stages["detect"], stages["annotate_encode"], "", 1.0, "image/jpeg",
    ]]  # fmt: skip
    for name, c in result["clips"].items():
        f = c["ms_per_frame_by_phase"]
        rows.append([
            name, f"{c['frames']} frames", c["ms_per_clip"]["p50"], c["ms_per_frame"],
            round(f["probe"] + f["decode"], 2), f["detect"], f["draw"], f["encode"], c["frame_over_photo"],
            f"{c['output']} {c['output_bytes'] // 1000} KB",
        ])  # fmt: skip
    s = result["slot"]
    rows.append(["telegram, in a slot", "", s["ms_per_clip"]["p50"], "", "", "", "", "", "", ""])
    return table(
        ["loop", "unit", "ms p50", "ms/frame", "decode", "detect", "draw (photo: +encode)", "encode", "frame/photo",
         "output"], rows,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 round, 2 s of photos, 2 runs of each clip")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; --quick 1)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (default 2)")
    parser.add_argument("--long", action="store_true", help="add a 60 s 1080p clip (a minute to make)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    info = machine()
    started = time.time()
    result = measure(
        rounds=rounds,
        photo_seconds=2.0 if args.quick else 5.0,
        clip_runs=2 if args.quick else 3,
        threads=args.threads,
        long=args.long,
    )
    telegram = result["clips"]["telegram"]
    path = write_results(
        "clips",
        {
            "machine": info,
            "photo_input": describe("100k"),
            "quick": args.quick,
            "rounds": rounds,
            "notes": [
                "one process, one ONNX Runtime session; photo and clip loops interleaved round by round",
                "a clip's ms/frame = the whole clip (probe, decode, detect, draw, encode) / sampled frames; "
                "frame/photo = that over the photo loop's p50 ms per photo",
                "a frame shown at several sample times is detected and drawn once (distinct_frames)",
                "slot = InferencePool.detect_clip wall time: process boundary, pickling and progress polling included",
                "others' load = cores the rest of the box used meanwhile; above 0.2 the numbers are disturbed",
            ],
            **result,
            "clip_3s_ms_p50": telegram["ms_per_clip"]["p50"],
            "clip_frame_ms": telegram["ms_per_frame"],
            "photo_ms_p50": result["photo"]["ms_per_photo"]["p50"],
            "bench_seconds": round(time.time() - started, 1),
        },
        args.out,
    )
    print(report(result))
    print(
        f"\na 3 s clip (telegram): {telegram['ms_per_clip']['p50']} ms for {telegram['frames']} frames, "
        f"{telegram['ms_per_frame']} ms a frame = {telegram['frame_over_photo']} x a photo "
        f"({result['photo']['ms_per_photo']['p50']} ms); in a slot {result['slot']['ms_per_clip']['p50']} ms"
    )
    print(f"slot process peak RSS (MB): {result['slot']['slot_peak_rss_mb']}")
    if "ms_60s_1080p_clip" in result["slot"]:
        print(f"the 60 s 1080p clip in a slot: {result['slot']['ms_60s_1080p_clip']} ms")
    print(f"others' load (cores, p50 of rounds): {result['other_load_cores_p50']}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
