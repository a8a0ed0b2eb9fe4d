"""Hostile clips cost little, whatever they claim: each is refused (or sampled) in a fresh process whose peak
memory and time are measured, beside a real 1080p clip that is sampled without holding its frames."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from tests.clips import dense_mp4, gif, gif_screen, header_claims, numbered, stretched, video, zero_delay_gif

MAX_GROWTH_MB = 120  # above the process's peak after a warm-up; a 16000x16000 GIF alone would take 1,000 MB
MAX_SECONDS = 2.0  # per clip, on a shared 2-core box


def _peak_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/self/status")


def _exercise(clips: dict[str, bytes]) -> dict[str, Any]:
    """In a fresh process: probe and sample every clip, keeping only the count; the outcome, time and peak."""
    from worker.clips.frames import sample_frames
    from worker.errors import BadClip

    def run(data: bytes) -> str:
        try:
            sampled = sum(1 for _ in sample_frames(data, max_frames=120, max_fps=10, deadline_s=20))
        except BadClip as exc:
            return exc.code
        return f"sampled {sampled}"

    run(gif(numbered(3), fps=10))  # warm-up: PyAV, the codecs, the allocator
    base = _peak_mb()
    results = {}
    for name, data in clips.items():
        started = time.perf_counter()
        outcome = run(data)
        results[name] = (outcome, time.perf_counter() - started, _peak_mb() - base)
    return {"base_mb": base, "results": results}


def test_hostile_clips_are_refused_or_bounded_in_time_and_memory() -> None:
    three_s = video(numbered(30), fps=10)
    hd = [np.array(np.broadcast_to(f[:1, :1], (1080, 1920, 3))) for f in numbered(60)]
    for i, frame in enumerate(hd):
        frame[200:880, 100 + i * 20 : 500 + i * 20] = 255  # something moving, so that every frame is coded
    clips = {
        "gif screen 65535x65535": gif_screen(65_535, 65_535),
        "gif screen 16000x16000": gif_screen(16_000, 16_000),
        "zero-delay gif, 5000 frames": zero_delay_gif(5_000),
        "mp4 of 1 s with 10000 frames": dense_mp4(10_000, seconds=1.0),
        "mp4 whose headers say 10 h": header_claims(three_s, seconds=36_000),
        "mp4 whose frames last 20 min each": stretched(three_s, seconds_per_frame=1_200),
        "mp4 truncated": three_s[: len(three_s) // 2],
        "1080p mp4, 2 s at 30 fps": video(hd, fps=30),
    }
    expected = {
        "gif screen 65535x65535": "clip_too_many_pixels",
        "gif screen 16000x16000": "clip_too_many_pixels",
        "zero-delay gif, 5000 frames": "clip_too_long",
        "mp4 of 1 s with 10000 frames": "clip_too_many_frames",
        "mp4 whose headers say 10 h": "sampled 30",  # FFmpeg goes by the sample table: 3 s
        "mp4 whose frames last 20 min each": "clip_too_long",
        "mp4 truncated": "clip_corrupt",
        "1080p mp4, 2 s at 30 fps": "sampled 20",  # 10 a second
    }
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as executor:
        measured = executor.submit(_exercise, clips).result(timeout=120)
    results = measured["results"]
    assert {name: outcome for name, (outcome, _, _) in results.items()} == expected
    for name, (_, seconds, growth_mb) in results.items():
        assert seconds < MAX_SECONDS, f"{name}: {seconds:.2f} s"
        assert growth_mb < MAX_GROWTH_MB, f"{name}: +{growth_mb:.0f} MB over {measured['base_mb']:.0f} MB"
