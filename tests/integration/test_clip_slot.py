"""A clip in an inference slot's process, as the worker will run it: the real offline model on the sample photo
panning, progress read across the process boundary, and the job's deadline (the clip stops itself; a model that
hangs has its process killed)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest

from detectbot.samples import sample_photos
from queue_gateway.public.clips import ClipOptions
from tests.clips import decoded, gif, numbered, panning
from tests.conftest_models import cache_dir
from tests.detectors import POISON_RGB
from tests.images import jpeg
from worker.errors import BadClip, ClipTooSlow, JobTimedOut
from worker.inference import CLIP_DEADLINE_SHARE, ClipJob, DetectorSpec, InferencePool, Job

StartPool = Callable[..., Awaitable[InferencePool]]


@pytest.fixture
async def start_pool(tmp_path: Path) -> AsyncIterator[StartPool]:
    """Start an inference pool of one slot with ``model``; every pool is closed after the test."""
    pools: list[InferencePool] = []

    async def start(model: str, *, timeout_s: float = 60.0) -> InferencePool:
        pool = InferencePool(DetectorSpec(model=model, data_dir=tmp_path, threads=1), 1, timeout_s=timeout_s)
        await pool.start()
        pools.append(pool)
        return pool

    yield start
    for pool in pools:
        await pool.close()


@pytest.fixture(scope="module")
def bus_panning() -> bytes:
    """A 3 s, 10 fps GIF of bus.jpg panning left to right (made here with Pillow)."""
    bus = next(path for path in sample_photos(cache_dir()) if path.name == "bus.jpg")
    return gif(panning(bus, seconds=3.0, fps=10), fps=10)


async def test_the_offline_model_finds_the_persons_in_a_panning_gif(
    start_pool: StartPool, offline_model_path: Path, bus_panning: bytes
) -> None:
    pool = await start_pool(str(offline_model_path))
    progress: list[tuple[int, int]] = []
    result = await pool.detect_clip(ClipJob(bus_panning, language="ru"), on_progress=lambda *p: progress.append(p))
    assert result.model == "offline-coco-yolov3-tiny-416"
    assert result.summary.get("person", 0) >= 2  # two persons stay in view all the way
    assert result.duration_s == pytest.approx(3.0, abs=0.01)
    assert result.source["container"] == "gif" and result.source["frames"] == 30
    assert len(result.frames) == 30 and result.frames[-1]["t"] == pytest.approx(2.9)
    boxes = [d["box"] for frame in result.frames for d in frame["detections"]]
    assert boxes and all(0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480 for x1, y1, x2, y2 in boxes)
    frames, about = decoded(result.animation)
    assert result.content_type == "video/mp4" and about["codec"] == "h264"
    assert len(frames) == 30 and frames[0].shape == (360, 480, 3)  # the animation's long side is 480
    assert progress[-1] == (30, 30)
    assert result.inference_ms > 0 and result.timings_ms["total"] < 30_000


async def test_discord_gets_the_smaller_animation(
    start_pool: StartPool, offline_model_path: Path, bus_panning: bytes
) -> None:
    pool = await start_pool(str(offline_model_path))
    result = await pool.detect_clip(ClipJob(bus_panning, options=ClipOptions(prefer="smallest")))
    assert result.content_type == "video/mp4"  # a photo's frames: H.264 is far smaller than a GIF
    assert len(result.animation) < len(bus_panning) / 4


async def test_progress_crosses_the_process_boundary_frame_by_frame(
    start_pool: StartPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DETECTBOT_TEST_NAP_S", "0.05")  # 30 frames: 1.5 s of model time
    pool = await start_pool("py:tests.detectors:napping")
    progress: list[tuple[int, int]] = []
    result = await pool.detect_clip(ClipJob(gif(numbered(30, size=(320, 240)), fps=10)), progress_to(progress))
    assert result.summary == {"bus": 1, "person": 1}
    assert len(progress) >= 4, progress  # read every 0.25 s
    assert all(total == 30 for _, total in progress)
    assert [done for done, _ in progress] == sorted({done for done, _ in progress})
    assert progress[-1] == (30, 30)


def progress_to(into: list[tuple[int, int]]) -> Callable[[int, int], None]:
    return lambda done, total: into.append((done, total))


async def test_a_slow_clip_stops_itself_before_the_deadline_and_keeps_its_slot(
    start_pool: StartPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DETECTBOT_TEST_NAP_S", "0.2")  # 30 frames: 6 s, and the deadline is 2 s
    pool = await start_pool("py:tests.detectors:napping", timeout_s=2.0)
    [pid] = pool.pids
    started = time.monotonic()
    with pytest.raises(ClipTooSlow) as caught:
        await pool.detect_clip(ClipJob(gif(numbered(30, size=(320, 240)), fps=10)))
    elapsed = time.monotonic() - started
    assert caught.value.code == "clip_too_slow"  # its own final error, not the deadline's JobTimedOut
    assert elapsed >= 2.0 * CLIP_DEADLINE_SHARE * 0.8  # it used the time it had (the caller's clock also counts
    # sending the clip and the answer, so it can pass 2 s on a slow box: the pid below is what says nothing was killed)
    assert pool.pids == [pid]  # nothing was killed: the slot goes on
    assert (await pool.detect(Job(jpeg(320, 240)))).detections


async def test_a_hanging_model_on_a_clip_is_killed_at_the_deadline(start_pool: StartPool) -> None:
    pool = await start_pool("py:tests.detectors:hang_on_poison", timeout_s=2.0)
    [pid] = pool.pids
    poison = [np.full((120, 160, 3), POISON_RGB, dtype=np.uint8)] * 10
    started = time.monotonic()
    with pytest.raises(JobTimedOut):
        await pool.detect_clip(ClipJob(gif(poison, fps=10)))
    assert time.monotonic() - started < 4.0
    assert pool.pids != [pid]  # a fresh process in its place
    result = await pool.detect_clip(ClipJob(gif(numbered(10), fps=10)))
    assert len(result.frames) == 10


async def test_a_refused_clip_keeps_its_code_and_limit_across_the_process_boundary(start_pool: StartPool) -> None:
    pool = await start_pool("py:tests.detectors:fixed")
    [pid] = pool.pids
    started = time.monotonic()
    with pytest.raises(BadClip) as caught:
        await pool.detect_clip(ClipJob(gif(numbered(2), durations_ms=[45_000, 45_000])))
    assert (caught.value.code, caught.value.limit) == ("clip_too_long", 60.0)
    assert "more than the 60 s limit" in str(caught.value)
    assert time.monotonic() - started < 1.0 and pool.pids == [pid]


def test_the_worker_process_itself_never_imports_pyav() -> None:
    code = "import sys, worker.main, worker.consumer, worker.inference; print('av' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"


async def test_a_clip_asking_for_less_than_the_models_threshold_gets_it_for_the_whole_clip(
    start_pool: StartPool,
) -> None:
    pool = await start_pool("py:tests.detectors:thresholding")  # its own threshold: 0.35; a dog at 0.2
    clip = gif(numbered(10, size=(320, 240)), fps=10)
    lower = await pool.detect_clip(ClipJob(clip, conf=0.1))
    assert (lower.summary, lower.conf) == ({"bus": 1, "dog": 1, "person": 1}, 0.1)
    default = await pool.detect_clip(ClipJob(clip))
    assert (default.summary, default.conf) == ({"bus": 1, "person": 1}, 0.35)  # and the model's own is back
    assert (await pool.detect(Job(jpeg(320, 240)))).conf == 0.35
