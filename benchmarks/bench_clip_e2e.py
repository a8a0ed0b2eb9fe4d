"""A 3 s clip end to end, beside a photo end to end, in the same run: HTTP upload → gateway (probe, blob store,
SQLite, publish) → RabbitMQ → worker (fetch, the clip in its slot, progress reports, upload) → the annotated
animation ready at its result link.

    python -m benchmarks.bench_clip_e2e [--quick] [--rounds 5] [--workdir DIR] [--log-level INFO]

Starts ``detectbot gateway`` (SQLite, a fresh queue) and one ``detectbot worker`` (one inference slot of 2
threads, the offline COCO model), then, one job at a time so that nothing waits in line, round by round: the clip
of ``bench_clips`` (bus.jpg panning, 3 s at 10 fps, as the H.264 MP4 Telegram hands a bot for a GIF) and the
100 KB benchmark photo, each new bytes (the result cache never answers). For each: the wall time from the upload's
first byte to the result being fetched whole (the upload answered, then ``GET /v1/jobs/{id}?wait=`` until it
finished, then ``GET …/result``), and the job's own stages (queue wait, processing). Writes
benchmarks/results/clip_e2e.json and prints a table; bench_clips gives the bare loops these sit on.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.bench_clips import clips
from benchmarks.photos import photo
from benchmarks.photos import unique as unique_photo
from benchmarks.procstat import TICK, box_cpu, cpu_seconds, descendants
from benchmarks.support import (
    CLIENT_KEY,
    Service,
    database,
    detectbot_command,
    free_port,
    gateway_env,
    machine,
    offline_model,
    ratio,
    scratch,
    service_env,
    service_options,
    start_gateway,
    summary,
    table,
    topology,
    wait_ready,
    write_results,
)


def tree_cpu(pids: list[int]) -> float:
    """CPU seconds of these processes and their children (the worker's inference process), and of this one."""
    tree = {found for pid in pids for found in (pid, *descendants(pid))}
    return sum(cpu_seconds(pid, reaped=False) or 0.0 for pid in tree) + time.process_time()


def unique_clip(data: bytes, serial: int) -> bytes:
    """The same MP4 as new bytes: a ``free`` box at its end, which demuxers and players skip."""
    tag = f"bench {serial}".encode()
    return data + (8 + len(tag)).to_bytes(4, "big") + b"free" + tag


def unique(data: bytes, serial: int) -> bytes:
    return unique_clip(data, serial) if data[4:8] == b"ftyp" else unique_photo(data, serial)


async def one(http: aiohttp.ClientSession, base: str, data: bytes, name: str) -> dict[str, Any]:
    """Upload, follow, fetch the result; the wall time and what the job says of its stages."""
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    started = time.perf_counter()
    form = aiohttp.FormData()
    form.add_field("image", data, filename=name, content_type="application/octet-stream")
    async with http.post(f"{base}/v1/jobs", data=form, headers=headers) as response:
        accepted = await response.json()
        if response.status != 202:
            raise RuntimeError(f"{name} refused: {accepted}")
    job_id = accepted["job_id"]
    while True:
        async with http.get(f"{base}/v1/jobs/{job_id}?wait=30", headers=headers) as response:
            view = await response.json()
        if view["finished"]:
            break
    async with http.get(f"{base}/v1/jobs/{job_id}/result", headers=headers) as response:
        result = await response.read()
        content_type = response.content_type
    wall = time.perf_counter() - started
    if view["status"] != "done":
        raise RuntimeError(f"{name}: {view['status']} {view.get('error')}")
    timings = view["timings"]
    return {
        "ms": wall * 1000,
        "queue_wait_ms": (timings["queue_wait_s"] or 0.0) * 1000,
        "processing_ms": (timings["processing_s"] or 0.0) * 1000,
        "result_type": content_type,
        "result_bytes": len(result),
        "caption": view["caption"],
    }


async def measure(*, rounds: int, per_round: int, log_level: str, workdir: Path) -> dict[str, Any]:
    model = offline_model()
    clip = clips(long=False)["mp4"]
    picture = photo("100k")
    async with topology("clip-e2e") as queue, database("sqlite", workdir) as url:
        port = free_port()
        env = gateway_env(database_url=url, queue=queue, port=port, data_dir=workdir / "gateway", log_level=log_level)
        gateway, base = await start_gateway(env, workdir)
        worker_port = free_port()
        worker_env = service_env(
            gateway_url=base, queue=queue, model=str(model), data_dir=str(workdir / "worker"), log_level=log_level,
            slots="1", infer_threads="2", http_port=str(worker_port),
        )  # fmt: skip
        worker = await Service.start("worker", detectbot_command("worker"), worker_env, workdir)
        try:
            await wait_ready(f"http://127.0.0.1:{worker_port}/readyz", worker, within_s=120)
            runs: dict[str, list[dict[str, Any]]] = {"clip": [], "photo": []}
            serial = 0
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
                for warm in (("clip", clip, "warm.mp4"), ("photo", picture, "warm.jpg")):  # PyAV, the first uploads
                    serial += 1
                    await one(http, base, unique(warm[1], serial), warm[2])
                busy0, ours0, wall0 = box_cpu()[0], tree_cpu([gateway.pid, worker.pid]), time.monotonic()
                for _ in range(rounds):
                    for kind, data, name in (("clip", clip, "clip.mp4"), ("photo", picture, "photo.jpg")):
                        for _ in range(per_round):
                            serial += 1
                            runs[kind].append(await one(http, base, unique(data, serial), name))
                ours = tree_cpu([gateway.pid, worker.pid]) - ours0
                others = max((box_cpu()[0] - busy0) / TICK - ours, 0.0) / (time.monotonic() - wall0)
        finally:
            await worker.stop()
            await gateway.stop()
    out: dict[str, Any] = {
        "model": str(model),
        "inputs": {"clip_bytes": len(clip), "photo_bytes": len(picture)},
        "other_load_cores": round(others, 2),
    }
    for kind, found in runs.items():
        out[kind] = {
            "runs": len(found),
            "ms_end_to_end": summary([r["ms"] for r in found], 1),
            "queue_wait_ms_p50": round(statistics.median(r["queue_wait_ms"] for r in found), 1),
            "processing_ms_p50": round(statistics.median(r["processing_ms"] for r in found), 1),
            "result_type": found[0]["result_type"],
            "result_bytes": found[0]["result_bytes"],
            "caption": found[0]["caption"],
        }
    clip_ms, photo_ms = out["clip"]["ms_end_to_end"]["p50"], out["photo"]["ms_end_to_end"]["p50"]
    out["clip_3s_end_to_end_ms_p50"] = clip_ms
    out["clip_over_photo"] = ratio(clip_ms, photo_ms)
    out["clip_overhead_ms_p50"] = round(clip_ms - out["clip"]["processing_ms_p50"], 1)
    return out


def report(result: dict[str, Any]) -> str:
    rows = [
        [kind, r["runs"], r["ms_end_to_end"]["p50"], r["ms_end_to_end"]["p95"], r["queue_wait_ms_p50"],
         r["processing_ms_p50"], f"{r['result_type']} {r['result_bytes'] // 1000} KB"]
        for kind, r in ((k, result[k]) for k in ("clip", "photo"))
    ]  # fmt: skip
    return table(["job", "runs", "end to end ms p50", "p95", "queue wait ms", "processing ms", "result"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 2 jobs each")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 5; --quick 2)")
    service_options(parser)
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 5)
    per_round = 2 if args.quick else 3
    info = machine()
    started = time.time()
    with scratch(args.workdir, "detectbot-bench-clip-e2e-") as workdir:
        result = asyncio.run(measure(rounds=rounds, per_round=per_round, log_level=args.log_level, workdir=workdir))
    path = write_results(
        "clip_e2e",
        {
            "machine": info,
            "quick": args.quick,
            "rounds": rounds,
            "notes": [
                "one job at a time (nothing waits in line); clip and photo jobs interleaved round by round",
                "end to end = the upload's first byte to the result fetched whole, as an HTTP client sees it",
                "processing = the job's processing_at to done_at (fetch, the slot, progress reports, upload)",
                "one worker: one inference slot of 2 threads; the gateway on SQLite",
                "others' load = cores the rest of the box used meanwhile; above 0.2 the numbers are disturbed",
            ],
            **result,
            "bench_seconds": round(time.time() - started, 1),
        },
        args.out,
    )
    print(report(result))
    print(
        f"\na 3 s clip end to end: {result['clip_3s_end_to_end_ms_p50']} ms p50 "
        f"({result['clip_over_photo']} x a photo's {result['photo']['ms_end_to_end']['p50']} ms); "
        f"{result['clip_overhead_ms_p50']} ms of it outside the worker's processing"
    )
    print(f"others' load (cores, over the measured rounds): {result['other_load_cores']}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
