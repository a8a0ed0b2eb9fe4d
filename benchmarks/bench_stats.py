"""GET /v1/stats on a million seeded jobs, on SQLite and Postgres, through the real gateway app.

    python -m benchmarks.bench_stats [--jobs 1000000] [--runs 15]

Seeds ``--jobs`` jobs with realistic timestamps, and the hourly rollups their transitions would have bumped
(``db.rollup``), in two layouts: spread over 30 days (a deployment that has run a while) and, as a worst
case, all within the last 24 hours. Writes benchmarks/results/stats.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from db import rollup
from db.migrate import upgrade
from queue_gateway.app import create_app
from queue_gateway.settings import GatewaySettings

RESULTS = Path(__file__).parent / "results" / "stats.json"
PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
ADMIN = "bench-admin-key-0123456789"
LABELS = ["person", "car", "bus", "dog", "bicycle", "truck", "cat", "chair"]
COLUMNS = [
    "id",
    "status",
    "platform",
    "idempotency_key",
    "user_ref",
    "origin",
    "params",
    "group_key",
    "group_size",
    "group_index",
    "image_sha256",
    "image_format",
    "width",
    "height",
    "attempts",
    "error_code",
    "error",
    "detections",
    "model",
    "worker",
    "inference_ms",
    "cache_hit",
    "received_at",
    "queued_at",
    "processing_at",
    "done_at",
    "failed_at",
    "dead_at",
    "delivered_at",
    "purged_at",
    "delivery_attempts",
    "next_delivery_at",
    "delivery_lease_until",
    "delivery_receipt",
    "delivery_error",
]


Rollups = dict[str, dict[tuple[Any, ...], int]]


def rows(count: int, now: float, span_s: float, seed: int = 7) -> tuple[list[tuple[Any, ...]], Rollups]:
    rng = random.Random(seed)
    jobs: list[tuple[Any, ...]] = []
    ups: Rollups = {"stats_events": Counter(), "stats_latency": Counter(), "stats_labels": Counter()}

    def event(at: float, platform_name: str, name: str) -> None:
        ups["stats_events"][(rollup.hour_of(at), platform_name, name)] += 1

    def latency(at: float, metric: str, seconds: float) -> None:
        ups["stats_latency"][(rollup.hour_of(at), metric, rollup.bucket_of(seconds))] += 1

    for _ in range(count):
        received = now - rng.random() * span_s
        roll = rng.random()
        status = "delivered" if roll < 0.55 else "done" if roll < 0.93 else "failed" if roll < 0.98 else "dead"
        platform_name = rng.choice(("telegram", "telegram", "discord", "http"))
        job_id = uuid.uuid4().hex
        processing = received + rng.expovariate(1 / 0.8)
        done = processing + rng.uniform(0.02, 0.2) if status in ("done", "delivered") else None
        delivered = done + rng.uniform(0.1, 1.5) if status == "delivered" and done else None
        failed = processing if status == "failed" else None
        dead = processing if status == "dead" else None
        jobs.append(
            (
                job_id,
                status,
                platform_name,
                None,
                None,
                None,
                "{}",
                None,
                1,
                0,
                "0" * 64,
                "JPEG",
                640,
                480,
                1,
                None,
                None,
                None,
                "offline-coco",
                "w1",
                16.0,
                rng.random() < 0.05,
                received,
                received,
                processing,
                done,
                failed,
                dead,
                delivered,
                None,
                0,
                None,
                None,
                None,
                None,
            )
        )
        event(received, platform_name, "received")
        if done is not None:
            event(done, platform_name, "done")
            latency(done, "queue_wait", processing - received)
            latency(done, "processing", done - processing)
            for label in rng.sample(LABELS, rng.randint(1, 3)):
                ups["stats_labels"][(rollup.hour_of(done), label)] += rng.randint(1, 4)
        if delivered is not None:
            event(delivered, platform_name, "delivered")
            latency(delivered, "end_to_end", delivered - received)
        elif done is not None:
            latency(done, "end_to_end", done - received)
        if status in ("failed", "dead"):
            event(processing, platform_name, status)
    return jobs, ups


ROLLUP_COLUMNS = {
    "stats_events": ["hour", "platform", "event", "n"],
    "stats_latency": ["hour", "metric", "bucket", "n"],
    "stats_labels": ["hour", "label", "n"],
}


def rollup_rows(ups: Rollups, table: str) -> list[tuple[Any, ...]]:
    return [(*key, n) for key, n in ups[table].items()]


def seed_sqlite(path: Path, jobs: list[tuple[Any, ...]], ups: Rollups) -> None:
    connection = sqlite3.connect(path)
    marks = ",".join("?" * len(COLUMNS))
    with connection:
        connection.executemany(f"INSERT INTO jobs ({','.join(COLUMNS)}) VALUES ({marks})", jobs)
        for table, columns in ROLLUP_COLUMNS.items():
            connection.executemany(
                f"INSERT INTO {table} ({','.join(columns)}) VALUES ({','.join('?' * len(columns))})",
                rollup_rows(ups, table),
            )
    connection.execute("ANALYZE")
    connection.close()


async def seed_postgres(dsn: str, jobs: list[tuple[Any, ...]], ups: Rollups) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.copy_records_to_table("jobs", records=jobs, columns=COLUMNS)
        for table, columns in ROLLUP_COLUMNS.items():
            await connection.copy_records_to_table(table, records=rollup_rows(ups, table), columns=columns)
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


async def time_stats(settings: GatewaySettings, runs: int) -> dict[str, Any]:
    server = TestServer(create_app(settings), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            url = str(server.make_url("/v1/stats"))
            headers = {"Authorization": f"Bearer {ADMIN}"}
            times = []
            body: dict[str, Any] = {}
            for _ in range(runs + 2):
                started = time.perf_counter()
                async with http.get(url, headers=headers) as response:
                    assert response.status == 200, await response.text()
                    body = await response.json()
                times.append((time.perf_counter() - started) * 1000)
            times = times[2:]  # the first two warm the caches
    finally:
        await server.close()
    ordered = sorted(times)
    return {
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(ordered[max(0, int(0.95 * len(ordered)) - 1)], 1),
        "max_ms": round(ordered[-1], 1),
        "jobs_in_window": body["jobs"]["received"],
        "runs": runs,
    }


def settings_for(url: str, data_dir: Path) -> GatewaySettings:
    return GatewaySettings(
        database_url=url,
        data_dir=data_dir,
        api_keys=[SecretStr("bench-key-0123456789")],
        admin_api_keys=[SecretStr(ADMIN)],
        signing_secret=SecretStr("bench-signing-secret-0123456789"),
        queue=f"bench-{uuid.uuid4().hex[:6]}.jobs",
        auto_migrate=False,
    )


async def one(backend: str, layout: str, count: int, runs: int, workdir: Path) -> dict[str, Any]:
    now = time.time()
    span = 30 * 86400 if layout == "30 days" else 86000
    jobs, ups = rows(count, now, span)
    started = time.perf_counter()
    if backend == "sqlite":
        path = workdir / f"{layout.replace(' ', '')}.sqlite3"
        url = f"sqlite+aiosqlite:///{path}"
        await upgrade(url)
        await asyncio.to_thread(seed_sqlite, path, jobs, ups)
        result = await time_stats(settings_for(url, workdir), runs)
    else:
        name = f"detectbot_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(PG_DSN)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        dsn = PG_DSN.rsplit("/", 1)[0] + f"/{name}"
        try:
            url = dsn.replace("postgresql://", "postgresql+asyncpg://")
            await upgrade(url)
            await seed_postgres(dsn, jobs, ups)
            result = await time_stats(settings_for(url, workdir), runs)
        finally:
            admin = await asyncpg.connect(PG_DSN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    result.update(
        {
            "backend": backend,
            "layout": layout,
            "jobs": count,
            "rollup_rows": sum(len(v) for v in ups.values()),
            "seed_s": round(time.perf_counter() - started, 1),
        }
    )
    return result


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("sqlite", "postgres"):
            for layout in ("30 days", "24 hours"):
                result = await one(backend, layout, args.jobs, args.runs, Path(tmp))
                print(
                    f"{backend:8} {layout:8} {result['jobs']:>9} jobs ({result['jobs_in_window']:>7} in window): "
                    f"p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms",
                    flush=True,
                )
                results.append(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
                "goal": "GET /v1/stats < 300 ms on 1,000,000 jobs",
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print("| database | jobs spread over | jobs in the 24 h window | p50 | p95 |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['backend']} | {r['layout']} | {r['jobs_in_window']:,} | {r['p50_ms']} ms | {r['p95_ms']} ms |")


if __name__ == "__main__":
    asyncio.run(main())
