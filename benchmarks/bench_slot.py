"""The hand-off of a photo to an inference process and of its answer back: the worker's slot (a socket pair,
``worker.slot``) against a one-process ``ProcessPoolExecutor`` (what each slot was before), side by side.

    python -m benchmarks.bench_slot [--calls 2000] [--rounds 5]

Each call carries what a photo's does: the 100 KB photo out, and an answer the size of an annotated JPEG with its
detections back; the process does nothing else with it, so what is measured is the hand-off alone. In alternating
rounds, each on a fresh process of either kind and a fresh uvloop (the services' loop): the worker process's CPU
per call (all its threads: the executor's feeder and management threads count), the inference process's, and
the wall time of a call. Writes benchmarks/results/slot.json.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import uvloop

from benchmarks.photos import photo
from benchmarks.procstat import cpu_seconds
from benchmarks.support import machine, ratio, table, write_results
from worker.inference import Inference, Job
from worker.slot import SlotProcess

ANSWER_BYTES = 60_000  # about an annotated 1280 x 960 JPEG
DETECTIONS = [{"label": "person", "confidence": 0.9, "box": [1.0, 2.0, 3.0, 4.0]}] * 5
KINDS = ("executor", "slot")


def _nothing() -> None:
    """The processes' initializer: the hand-off is what is measured."""


def _answer(job: Job) -> Inference:
    return Inference(DETECTIONS, job.data[:ANSWER_BYTES], 1280, 960, 1.0, "bench")


def _pid() -> int:
    return os.getpid()


async def one_round(kind: str, calls: int, data: bytes) -> dict[str, float]:
    """CPU ms per call of this process and of the inference process, and the median wall ms of a call."""
    context = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    if kind == "executor":
        executor = ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_nothing)

        async def call(function: Any, *args: Any) -> Any:
            return await loop.run_in_executor(executor, function, *args)

        async def stop() -> None:
            await asyncio.to_thread(executor.shutdown, wait=True)
    else:
        slot = SlotProcess(context, _nothing, (), name="bench-slot")
        await slot.start()
        call, stop = slot.call, slot.stop
    try:
        pid = await call(_pid)
        job = Job(data)
        for _ in range(100):  # warm-up
            await call(_answer, job)
        walls: list[float] = []
        child_started, started = cpu_seconds(pid, reaped=False) or 0.0, time.process_time()
        for _ in range(calls):
            began = time.perf_counter()
            result = await call(_answer, job)
            walls.append((time.perf_counter() - began) * 1000)
        spent = time.process_time() - started
        child_spent = (cpu_seconds(pid, reaped=False) or 0.0) - child_started
        assert len(result.image) == min(ANSWER_BYTES, len(data))
    finally:
        await stop()
    return {
        "worker_cpu_ms": round(spent * 1000 / calls, 4),
        "inference_cpu_ms": round(child_spent * 1000 / calls, 4),
        "wall_ms_p50": round(statistics.median(walls), 4),
    }


def run(calls: int, rounds: int) -> dict[str, Any]:
    data = photo("100k")
    found: dict[str, dict[str, list[float]]] = {kind: {} for kind in KINDS}
    for _ in range(rounds):
        for kind in KINDS:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # the services' loop
                for key, value in runner.run(one_round(kind, calls, data)).items():
                    found[kind].setdefault(key, []).append(value)
    medians = {
        kind: {key: round(statistics.median(v), 4) for key, v in by_key.items()} for kind, by_key in found.items()
    }
    return {
        "rounds_found": found,
        "median": medians,
        "slot_over_executor": {key: ratio(medians["slot"][key], medians["executor"][key]) for key in medians["slot"]},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    info = machine()
    results = run(args.calls, args.rounds)
    print(table(["per call (median of rounds)", "executor", "slot", "slot / executor"], [
        [key, results["median"]["executor"][key], results["median"]["slot"][key], results["slot_over_executor"][key]]
        for key in results["median"]["slot"]
    ]))  # fmt: skip
    path = write_results("slot", {"machine": info, "calls": args.calls, "rounds": args.rounds,
                                  "photo_bytes": len(photo("100k")), "answer_bytes": ANSWER_BYTES, **results},
                         args.out)  # fmt: skip
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
