"""A whole worker's peak memory and throughput, ONNX Runtime path against the torch path, in one run.

    python -m benchmarks.bench_worker [--photos 30]

Starts a real gateway (SQLite) in this process and ``python -m worker`` as a child, pushes photos through
the real RabbitMQ, and samples the resident memory of the worker process *and* its inference process from
/proc while it works. Writes benchmarks/results/worker.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from PIL import Image
from pydantic import SecretStr

from queue_gateway.app import create_app
from queue_gateway.settings import GatewaySettings
from tests.conftest_models import cache_dir
from tests.images import ultralytics_asset

RESULTS = Path(__file__).parent / "results" / "worker.json"
KEY = "bench-key-0123456789"


def tree_rss_mb(pid: int) -> dict[str, float]:
    """Resident memory of a process and its children, from /proc (MB)."""
    sizes: dict[str, float] = {}
    for candidate in [pid, *_children(pid)]:
        try:
            status = Path(f"/proc/{candidate}/status").read_text()
        except OSError:
            continue
        rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        sizes["worker" if candidate == pid else f"inference-{candidate}"] = rss / 1024
    return sizes


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found + [grand for child in found for grand in _children(child)]


def photos() -> list[tuple[str, bytes]]:
    bus = ultralytics_asset("bus.jpg").read_bytes()
    zidane = ultralytics_asset("zidane.jpg").read_bytes()
    with Image.open(io.BytesIO(bus)) as image:
        big = io.BytesIO()
        image.resize((4000, 3000)).save(big, "JPEG", quality=90)
    return [("bus.jpg", bus), ("zidane.jpg", zidane), ("bus-4000x3000.jpg", big.getvalue())]


async def run(model: str, count: int, workdir: Path) -> dict[str, Any]:
    queue = f"bench-{uuid.uuid4().hex[:6]}.jobs"
    settings = GatewaySettings(
        data_dir=workdir / "gateway",
        database_url=f"sqlite+aiosqlite:///{workdir / f'{uuid.uuid4().hex}.db'}",
        queue=queue,
        api_keys=[SecretStr(KEY)],
        signing_secret=SecretStr("bench-signing-secret-0123456789"),
        result_cache=False,
    )
    server = TestServer(create_app(settings), host="127.0.0.1", port=0)
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    env = {
        **os.environ,
        "DETECTBOT_GATEWAY_URL": base,
        "DETECTBOT_API_KEY": KEY,
        "DETECTBOT_QUEUE": queue,
        "DETECTBOT_MODEL": model,
        "DETECTBOT_DATA_DIR": str(workdir / "worker"),
        "DETECTBOT_INFER_THREADS": "2",
        "DETECTBOT_HTTP_PORT": "0",
    }
    worker = await asyncio.create_subprocess_exec(sys.executable, "-m", "worker", "--log-level", "INFO", env=env)
    peak: dict[str, float] = {}
    peak_total = 0.0
    stop = asyncio.Event()

    async def sample() -> None:
        nonlocal peak_total
        while not stop.is_set():
            sizes = tree_rss_mb(worker.pid)
            peak_total = max(peak_total, sum(sizes.values()))
            for name, mb in sizes.items():
                key = "worker" if name == "worker" else "inference"
                peak[key] = max(peak.get(key, 0.0), mb)
            await asyncio.sleep(0.05)  # sampling period

    sampler = asyncio.create_task(sample())
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as http:
            job_ids = []
            started = time.perf_counter()
            images = photos()
            for index in range(count):
                name, data = images[index % len(images)]
                form = aiohttp.FormData()
                form.add_field("image", data, filename=name)
                async with http.post(f"{base}/v1/jobs", data=form) as response:
                    job_ids.append((await response.json())["job_id"])
            for job_id in job_ids:
                while True:
                    if worker.returncode is not None:
                        raise RuntimeError(f"the worker exited with {worker.returncode}")
                    async with http.get(f"{base}/v1/jobs/{job_id}?wait=30") as response:
                        body = await response.json()
                    if body["finished"]:
                        assert body["status"] == "done", body
                        break
            elapsed = time.perf_counter() - started  # includes the worker's start and model warm-up
    finally:
        stop.set()
        await sampler
        worker.terminate()
        await worker.wait()
        await server.close()
    return {
        "model": model,
        "photos": count,
        "seconds": round(elapsed, 1),
        "photos_per_s": round(count / elapsed, 2),
        "peak_rss_mb": {k: round(v) for k, v in peak.items()},
        "peak_total_mb": round(peak_total),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=30)
    args = parser.parse_args()
    offline = next(cache_dir().glob("models/**/offline-coco-*.onnx"), None) or "offline-coco"
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in (str(offline), "yolo11n.yaml"):
            result = await run(model, args.photos, Path(tmp))
            results.append(result)
            print(json.dumps(result), flush=True)
    RESULTS.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "goal": "worker peak RSS <= 600 MB",
                "note": "bus.jpg, zidane.jpg and a 4000x3000 bus in turn; 1 slot, 2 threads; RSS sampled every 50 ms",
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print("| model | runtime | worker process | inference process | total | photos/s |")
    print("|---|---|---|---|---|---|")
    for r in results:
        runtime = "PyTorch (ultralytics)" if r["model"].endswith(".yaml") else "ONNX Runtime (no torch)"
        rss = r["peak_rss_mb"]
        print(
            f"| {Path(r['model']).name} | {runtime} | {rss.get('worker')} MB | {rss.get('inference')} MB | "
            f"{r['peak_total_mb']} MB | {r['photos_per_s']} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
