"""Durable intake: how many photos per second `POST /v1/jobs` accepts (stored + published with a confirm).

    python -m benchmarks.bench_intake [--jobs 2000] [--concurrency 64]

Runs `detectbot gateway` as its own process (SQLite, then Postgres) and loads it from this one with
``--concurrency`` clients sending a 5 KB JPEG each. No worker runs: the jobs stay queued. This is the baseline
for the intake goal (>= 1,250 durable jobs/s), which group commit behind ``Intake.submit`` is meant to reach.
Writes benchmarks/results/intake.json.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import asyncpg
from PIL import Image

RESULTS = Path(__file__).parent / "results" / "intake.json"
PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
AMQP = "amqp://guest:guest@127.0.0.1:5672/"
KEY = "bench-key-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (30, 90, 160)).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


async def load(base: str, jobs: int, concurrency: int) -> dict[str, Any]:
    data = photo()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(jobs))

    async def client(http: aiohttp.ClientSession) -> None:
        for _ in counter:
            form = aiohttp.FormData()
            form.add_field("image", data, filename="p.jpg")
            started = time.perf_counter()
            async with http.post(f"{base}/v1/jobs", data=form) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers={"Authorization": f"Bearer {KEY}"}) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "jobs": jobs,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "jobs_per_s": round(statuses.get(202, 0) / elapsed, 1),
        "statuses": statuses,
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "p95_ms": round(latencies[int(len(latencies) * 0.95)] * 1000, 1),
    }


async def one(backend: str, jobs: int, concurrency: int, workdir: Path) -> dict[str, Any]:
    queue = f"bench-{uuid.uuid4().hex[:6]}.jobs"
    pg_name = None
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / f'{queue}.db'}"
    else:
        pg_name = f"detectbot_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(PG_DSN)
        await admin.execute(f'CREATE DATABASE "{pg_name}"')
        await admin.close()
        url = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{pg_name}"
    port = free_port()
    env = {
        **os.environ,
        "DETECTBOT_DATABASE_URL": url,
        "DETECTBOT_QUEUE": queue,
        "DETECTBOT_API_KEYS": KEY,
        "DETECTBOT_SIGNING_SECRET": "bench-signing-secret-0123456789",
        "DETECTBOT_DATA_DIR": str(workdir),
        "DETECTBOT_MAX_QUEUE_LENGTH": str(jobs * 2),
        "DETECTBOT_RESULT_CACHE": "false",
    }
    gateway = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "queue_gateway", "--port", str(port), "--log-level", "WARNING", env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(f"{base}/readyz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)  # polling the gateway's readiness with a deadline
        result = await load(base, jobs, concurrency)
    finally:
        gateway.terminate()
        await gateway.wait()
        connection = await aio_pika.connect(AMQP)
        channel = await connection.channel()
        for name in (queue, f"{queue}.dead"):
            await channel.queue_delete(name)
        await channel.exchange_delete(queue.removesuffix(".jobs"))
        await connection.close()
        if pg_name:
            admin = await asyncpg.connect(PG_DSN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
            await admin.close()
    return {"backend": backend, **result}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("sqlite", "postgres"):
            result = await one(backend, args.jobs, args.concurrency, Path(tmp))
            print(json.dumps(result), flush=True)
            results.append(result)
    RESULTS.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "goal": ">= 1,250 durable jobs/s (a later issue; group commit behind Intake.submit)",
                "note": "gateway and load share 2 vCPUs; one transaction and one confirmed publish per job",
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    asyncio.run(main())
