"""The benchmark helpers measure what they claim: new bytes with the same pixels, percentiles, profiles, SQL counts."""

from __future__ import annotations

import hashlib
import io
import select
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks import bench_slot, bench_statements, sqlcount
from benchmarks.bench_clip_e2e import unique_clip
from benchmarks.bench_e2e import CHATS, USERS_PER_CHAT, burst, poisson
from benchmarks.photos import photo, synthetic, unique
from benchmarks.procstat import Sampler, cpu_seconds, top_functions
from benchmarks.support import percentile, summary
from queue_gateway.images import validate
from queue_gateway.public.clipprobe import probe
from tests.clips import decoded, index_of, numbered, video


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    synthetic(3).resize((320, 240)).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def test_unique_copies_are_new_photos_with_the_same_pixels_that_the_gateway_accepts() -> None:
    data = _jpeg()
    copies = [unique(data, n) for n in range(3)]
    assert len({hashlib.sha256(c).hexdigest() for c in [data, *copies]}) == 4
    for copy in copies:
        with Image.open(io.BytesIO(copy)) as a, Image.open(io.BytesIO(data)) as b:
            assert np.array_equal(np.asarray(a), np.asarray(b))
        assert validate(copy, max_bytes=20 << 20, max_pixels=25_000_000).width == 320


def test_unique_clips_are_new_bytes_of_the_same_clip() -> None:
    data = video(numbered(10, size=(64, 48)), fps=10)
    copies = [unique_clip(data, n) for n in range(3)]
    assert len({hashlib.sha256(c).hexdigest() for c in [data, *copies]}) == 4
    for copy in copies:
        info = probe(copy)
        assert (info.frames, info.width, info.duration_s) == (10, 64, 1.0)
        assert [index_of(frame) for frame in decoded(copy)[0]] == list(range(10))


def test_percentiles_interpolate_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.5
    assert percentile(values, 95) == 95.05
    found = summary([3.0, 1.0, 2.0], digits=2)
    assert found == {"n": 3, "p50": 2.0, "p95": 2.9, "p99": 2.98, "min": 1.0, "max": 3.0, "mean": 2.0}


def test_top_functions_counts_self_and_total_time() -> None:
    raw = "main (app.py:1);work (app.py:5);sqlite (db.py:9) 30\nmain (app.py:1);work (app.py:5) 10\nbroken line\n"
    found = top_functions(raw)
    assert found["samples"] == 40
    self_time = {row["function"]: row["self_pct"] for row in found["top_self"]}
    total = {row["function"]: row["total_pct"] for row in found["top_total"]}
    assert self_time == {"sqlite (db.py:9)": 75.0, "work (app.py:5)": 25.0}
    assert total["main (app.py:1)"] == 100.0 and total["sqlite (db.py:9)"] == 75.0


def test_sql_statements_are_grouped_and_diffed_per_photo() -> None:
    key = sqlcount.normalise("SELECT *\n  FROM jobs WHERE id IN (?, ?, ?)")
    assert key == sqlcount.normalise("SELECT * FROM jobs WHERE id IN (?)") == "SELECT * FROM jobs WHERE id IN (…)"
    before = {"statements": {key: {"executions": 2, "rows": 2, "seconds": 0.002}}}
    after = {"statements": {key: {"executions": 12, "rows": 12, "seconds": 0.012}, "COMMIT": {"executions": 0}}}
    found = sqlcount.diff(before, after, per=5)
    assert found["statements_per_photo"] == 2.0
    assert found["top"][0]["ms_per_photo"] == 2.0


def test_arrivals_are_seeded_and_a_burst_gives_each_person_one_photo() -> None:
    assert poisson(10, 5, seed=1) == poisson(10, 5, seed=1) != poisson(10, 5, seed=2)
    arrivals = burst(CHATS * USERS_PER_CHAT)
    assert len({(chat, user) for _, chat, user in arrivals}) == len(arrivals)


def test_cpu_seconds_reads_this_process() -> None:
    import os

    first = cpu_seconds(os.getpid())
    sum(i * i for i in range(200_000))
    second = cpu_seconds(os.getpid())
    assert first is not None and second is not None and second >= first
    assert cpu_seconds(2**22 + 12345) is None


_BURN = "import time\nwhile time.process_time() < 0.4: pass"


def _sample_until_it_says(sampler: Sampler, process: subprocess.Popen[bytes], word: bytes) -> None:
    """Sample every 20 ms until ``process`` prints ``word`` (it waits on its stdin before and after its work, so
    that it is alive at the first sample and at the last)."""
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(b"go\n")
    process.stdin.flush()
    deadline = time.monotonic() + 30
    while not select.select([process.stdout], [], [], 0.02)[0]:  # the sampling period of this test
        assert time.monotonic() < deadline, "the CPU-burning work never finished"
        sampler.sample()
    assert process.stdout.readline().strip() == word
    sampler.sample()


def _waiting(code: str) -> subprocess.Popen[bytes]:
    """``code`` in a process that waits for a line on its stdin first, prints ``done`` after it, and then waits for
    its stdin to close before it exits."""
    script = f"import sys\nsys.stdin.readline()\n{code}\nprint('done', flush=True)\nsys.stdin.read()"
    return subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def test_a_split_tree_reports_its_root_and_its_descendants_apart() -> None:
    # a parent that only waits, and a child that burns 0.4 s of CPU: the child's time goes to the split part
    parent = _waiting(f"import subprocess; subprocess.run([sys.executable, '-c', {_BURN!r}])")
    try:
        sampler = Sampler()
        started = time.time()
        sampler.watch("worker", parent.pid, split="inference")
        _sample_until_it_says(sampler, parent, b"done")  # the child has run and been reaped
        ended = time.time()
    finally:
        parent.communicate(timeout=30)
    report = sampler.cpu_report(started, ended, per=4)
    whole = report["worker"]["cpu_ms_per_photo"]
    root, children = (report["parts"][name]["cpu_ms_per_photo"] for name in ("worker main", "inference"))
    assert children >= 0.3 * 1000 / 4  # most of the child's 0.4 s, reaped after it exited
    assert root < children / 2
    assert abs(root + children - whole) < 1.0


def test_a_process_with_threads_reports_its_event_loop_and_its_other_threads_apart() -> None:
    # the main thread waits while another thread burns 0.4 s of CPU (as aiosqlite's thread runs SQLite)
    process = _waiting(f"import threading; t = threading.Thread(target=exec, args=({_BURN!r},)); t.start(); t.join()")
    try:
        sampler = Sampler()
        started = time.time()
        sampler.watch("gateway", process.pid, threads=True)
        _sample_until_it_says(sampler, process, b"done")
        ended = time.time()
    finally:
        process.communicate(timeout=30)
    report = sampler.cpu_report(started, ended, per=1)
    loop, others = (report["parts"][f"gateway {name}"]["cpu_ms_per_photo"] for name in ("event loop", "other threads"))
    assert others >= 300 and loop < others / 2


def test_profile_parts_take_the_first_matching_part_and_waits_are_dropped() -> None:
    raw = "\n".join([
        'process 7:"worker";main (w/main.py:1);fetch_input (worker/gateway.py:40);read (aiohttp/x.py:1) 30',
        'process 7:"worker";main (w/main.py:1);select (selectors.py:400) 50',
        'process 7:"worker";process 9:"slot";_process_worker (concurrent/futures/process.py:1);'
        "predict (worker/onnx_detector.py:300);Session.run (onnxruntime/x.py:1) 60",
        'process 7:"worker";process 9:"slot";_process_worker (concurrent/futures/process.py:1) 10',
    ])  # fmt: skip
    parts = (("detect", ("predict (worker/onnx_detector.py",)), ("slot", ("_process_worker",)), ("rest", ()))
    found = top_functions(raw, groups=parts, root_pid=7, drop_idle=True)
    assert found["samples"] == 100 and found["idle_samples_dropped"] == 50
    assert {row["part"]: row["samples"] for row in found["parts"]} == {"detect": 60, "slot": 10, "rest": 30}
    assert {row["process"]: row["samples"] for row in found["processes"]} == {"child": 70, "main": 30}
    assert found["parts"][0]["leaf_packages_pct"] == {"onnxruntime": 100.0}


def test_a_services_entry_point_under_every_stack_does_not_make_a_part() -> None:
    raw = "\n".join([
        "run (/app/queue_gateway/main.py:39);_run_once (asyncio/base_events.py:1);select (selectors.py:1) 5",
        "run (/app/queue_gateway/main.py:39);submit (/app/queue_gateway/api.py:104) 3",
    ])  # fmt: skip
    parts = (("intake", ("queue_gateway/api.py",)), ("gateway", ("/queue_gateway/",)), ("rest", ()))
    found = top_functions(raw, groups=parts)
    assert {row["part"]: row["samples"] for row in found["parts"]} == {"rest": 5, "intake": 3}


def test_the_labelled_set_scores_greedily_by_class_with_ignore_regions() -> None:
    from benchmarks.labelled import Sample, average_precision, match, precision_recall

    sample = Sample("s", np.zeros((10, 10, 3), np.uint8), [("person", (0, 0, 100, 100)), ("tie", (40, 40, 50, 90))],
                    ignore=[("person", (200, 0, 300, 100))])  # fmt: skip
    found = [
        ("person", 0.5, (0, 0, 100, 100)),  # the person, but a better one comes first
        ("person", 0.9, (5, 5, 100, 100)),
        ("dog", 0.8, (0, 0, 100, 100)),  # right place, wrong class
        ("person", 0.7, (200, 0, 290, 100)),  # on an ignore region
        ("tie", 0.3, (40, 40, 50, 60)),  # IoU 0.4: too loose
    ]
    outcomes = match(sample, found)
    assert outcomes == [(0.9, "person", "tp"), (0.8, "dog", "fp"), (0.7, "person", "ignored"),
                        (0.5, "person", "fp"), (0.3, "tie", "fp")]  # fmt: skip
    assert precision_recall(outcomes, 2, 0.6) == {"conf": 0.6, "tp": 1, "fp": 1, "fn": 1, "precision": 0.5,
                                                  "recall": 0.5}  # fmt: skip
    assert average_precision(outcomes, 2) == 0.5  # one of two found, first in line
    assert average_precision([(0.9, "a", "tp"), (0.8, "a", "fp"), (0.7, "a", "tp")], 2) == 0.5 + 0.5 * 2 / 3


async def test_the_statement_benchmark_takes_each_photo_through_every_step_to_its_delivery(tmp_path: Path) -> None:
    cpu_ms, steps = await bench_statements.one_round(3, tmp_path / "handoff", "handoff")
    assert cpu_ms > 0
    named = {"intake + publish confirm", "status message", "worker start", "result", "receipt"}
    assert set(steps) == named | {f"{step} (CPU)" for step in named}  # each step's wall time and CPU
    assert all(len(times) == 3 for times in steps.values())
    _, before = await bench_statements.one_round(3, tmp_path / "loop", "loop")  # the flow before: a lease of its own
    assert set(before) == set(steps) | {"lease", "lease (CPU)"} and all(len(times) == 3 for times in before.values())


@pytest.mark.parametrize("kind", bench_slot.KINDS)
async def test_the_slot_benchmark_measures_each_hand_off_with_a_photo_each_way(kind: str) -> None:
    measured = await bench_slot.one_round(kind, 20, photo("100k"))
    assert set(measured) == {"worker_cpu_ms", "inference_cpu_ms", "wall_ms_p50"}
    assert measured["worker_cpu_ms"] > 0 and measured["wall_ms_p50"] > 0
