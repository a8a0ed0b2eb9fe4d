"""Durable intake: how many photos per second ``POST /v1/jobs`` accepts, against a non-durable Express baseline.

    python -m benchmarks.bench_intake [--quick] [--seconds 15] [--repeats 3] [--profile]

``wrk`` (apt-get install wrk) is the load generator, so that the client's CPU does not eat the gateway's: 64
connections post the 100 KB 1280x960 benchmark photo (multipart ``image``, ``Authorization: Bearer``); a Lua
script gives every request a JPEG comment of its own, so each job is a new photo. No worker runs: every 202
means the job and its image are stored and the broker confirmed the persistent message (the one client key's
limits are raised, ``benchmarks.support.UNLIMITED_CLIENT_KEY``, or it would be refused after 500 in line and
all but 8 held back unpublished). Targets, each on a
fresh database and a fresh queue, interleaved ``--repeats`` times after a warm-up:

* ``detectbot gateway`` on SQLite, and on Postgres (a new database each run, dropped afterwards);
* the baseline in ``benchmarks/baseline/express``: Express + multer (memoryStorage) + amqplib publishing a small
  non-persistent message without confirms, nothing stored (``npm ci`` runs there when node_modules is missing).

Per target: jobs/s, wrk's latency p50/p99, errors (connect, read, write, timeout, non-2xx), the rows stored, and
the CPU ms per job of the gateway, wrk, RabbitMQ and Postgres (/proc; the last two are shared services).
``--profile`` adds one py-spy-recorded run per database, kept out of the medians, and writes its top
functions. The goal: >= 1,250 jobs/s, p99 <= 100 ms, 0 errors on both databases. Writes
benchmarks/results/intake.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.photos import describe, photo
from benchmarks.procstat import Profile, Sampler, find_pid
from benchmarks.support import (
    AMQP_URL,
    CLIENT_KEY,
    ROOT,
    UNLIMITED_CLIENT_KEY,
    Service,
    database,
    delete_queue,
    free_port,
    gateway_env,
    machine,
    queue_name,
    scratch,
    service_options,
    sqlite_path,
    start_gateway,
    table,
    topology,
    wait_ready,
    write_results,
)

BASELINE = ROOT / "benchmarks" / "baseline" / "express"
TARGETS = ("sqlite", "postgres", "express")
CONNECTIONS = 64

WRK_SCRIPT = r"""
-- POST /v1/jobs, multipart "image"; every request carries a JPEG comment of its own (a new photo each time).
local f = assert(io.open(os.getenv("BENCH_PHOTO"), "rb"))
local data = f:read("*a")
f:close()
local rest = data:sub(3)  -- everything after the start-of-image marker
local boundary = "detectbot-bench-boundary-7MA4YWxkTrZu0gW"
local head = "--" .. boundary .. "\r\n" ..
  'Content-Disposition: form-data; name="image"; filename="photo.jpg"\r\n' ..
  "Content-Type: image/jpeg\r\n\r\n\255\216"
local tail = "\r\n--" .. boundary .. "--\r\n"
local headers = {
  ["Content-Type"] = "multipart/form-data; boundary=" .. boundary,
  ["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY"),
}
local threads = 0
local n = 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function request()
  n = n + 1
  local text = "detectbot-bench " .. tostring(id) .. "-" .. tostring(n)
  local length = #text + 2
  local comment = "\255\254" .. string.char(math.floor(length / 256), length % 256) .. text
  return wrk.format("POST", "/v1/jobs", headers, head .. comment .. rest .. tail)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


def ensure_baseline() -> None:
    """``npm ci`` (or ``npm install``) in benchmarks/baseline/express when its node_modules is missing."""
    if (BASELINE / "node_modules" / "express").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed (apt-get install npm), needed for the Express baseline")
    command = "ci" if (BASELINE / "package-lock.json").is_file() else "install"
    subprocess.run([npm, command, "--no-audit", "--no-fund"], cwd=BASELINE, check=True, timeout=300)


async def run_wrk(base: str, seconds: float, workdir: Path, sampler: Sampler | None = None) -> dict[str, Any]:
    """One wrk run against ``base``; its summary, and wrk's own CPU."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed: apt-get install wrk")
    script = workdir / "post_photo.lua"
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "BENCH_PHOTO": str(workdir / "photo.jpg"), "BENCH_KEY": CLIENT_KEY}
    args = ["-t", "1", "-c", str(CONNECTIONS), "-d", f"{seconds:g}s", "--timeout", "10s", "-s", str(script), base]
    proc = await asyncio.create_subprocess_exec(wrk, *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)  # fmt: skip
    if sampler is not None:
        sampler.watch("wrk", proc.pid)
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{text[-2000:]}")
    return dict(json.loads(line.removeprefix("BENCH_JSON ")))


async def stored_rows(url: str) -> dict[str, int]:
    """Jobs stored, by status, straight from the database."""
    query = "SELECT status, count(*) FROM jobs GROUP BY status"
    if url.startswith("sqlite"):
        import sqlite3

        with contextlib.closing(sqlite3.connect(f"file:{sqlite_path(url)}?mode=ro", uri=True, timeout=10)) as db:
            return {status: int(count) for status, count in db.execute(query).fetchall()}
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return {row[0]: int(row[1]) for row in await connection.fetch(query)}
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def serve(target: str, workdir: Path, log_level: str) -> Any:
    """Start one target on a fresh database and queue; yields (its base URL, its pid, the database URL or None)."""
    if target == "express":
        queue = queue_name("intake-express")
        port = free_port()
        env = {**os.environ, "PORT": str(port), "QUEUE": queue, "AMQP_URL": AMQP_URL, "API_KEY": CLIENT_KEY}
        node = shutil.which("node") or "node"
        service = await Service.start("express", [node, str(BASELINE / "index.js")], env, workdir)
        try:
            await wait_ready(f"http://127.0.0.1:{port}/healthz", service)
            yield f"http://127.0.0.1:{port}", service.pid, None
        finally:
            await service.stop()
            with contextlib.suppress(Exception):
                await delete_queue(queue)
        return
    async with topology(f"intake-{target}") as queue, database(target, workdir) as url:
        # the load comes from one client key: its limits (jobs in line, jobs a minute, its fair share of the
        # broker) are lifted, or the run would measure 429s after the first 500 photos and hold all but 8 unpublished
        env = gateway_env(database_url=url, queue=queue, port=free_port(), data_dir=workdir / "gateway",
                          log_level=log_level, max_queue_length="1000000", **UNLIMITED_CLIENT_KEY)  # fmt: skip
        gateway, base = await start_gateway(env, workdir, name=f"gateway-{target}")
        try:
            yield base, gateway.pid, url
        finally:
            await gateway.stop()


async def one(target: str, args: argparse.Namespace, workdir: Path, *, profile: bool = False) -> dict[str, Any]:
    sampler = Sampler(period_s=0.2)
    async with serve(target, workdir, args.log_level) as (base, pid, url):
        sampler.watch("gateway" if target != "express" else "express", pid)
        for name, comm in (("rabbitmq (shared)", "beam.smp"), ("postgres (shared)", "postgres")):
            if (found := find_pid(comm)) is not None:
                sampler.watch(name, found)
        await run_wrk(base, args.warmup, workdir)
        profiler = Profile(pid, workdir / f"{target}.pyspy.txt") if profile else None
        if profiler is not None:
            await profiler.start()
        sampler.start()
        start = time.time()
        wrk = await run_wrk(base, args.seconds, workdir, sampler)
        end = time.time()
        await sampler.stop()
        hot = await profiler.stop() if profiler is not None else None
        rows = await stored_rows(url) if url else None
    ok = wrk["requests"] - wrk["status"]
    errors = {k: wrk[k] for k in ("connect", "read", "write", "status", "timeout")}
    result: dict[str, Any] = {
        "target": target,
        "durable": target != "express",
        "seconds": round(wrk["duration_us"] / 1e6, 2),
        "requests": wrk["requests"],
        "jobs_per_s": round(ok / (wrk["duration_us"] / 1e6), 1),
        "p50_ms": round(wrk["p50_us"] / 1000, 1),
        "p90_ms": round(wrk["p90_us"] / 1000, 1),
        "p99_ms": round(wrk["p99_us"] / 1000, 1),
        "max_ms": round(wrk["max_us"] / 1000, 1),
        "errors": errors,
        "error_total": sum(errors.values()),
        "rows_by_status": rows,
        "cpu": sampler.cpu_report(start, end, ok),
        "memory_mb": {k: v["peak_tree_rss_mb"] for k, v in sampler.memory_report().items()},
    }
    if hot is not None:
        result["profile"] = hot
    return result


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    (workdir / "photo.jpg").write_bytes(photo("100k"))
    runs: dict[str, list[dict[str, Any]]] = {target: [] for target in args.targets}
    for repeat in range(args.repeats):
        for target in args.targets:
            result = await one(target, args, workdir)
            runs[target].append(result)
            print(f"  repeat {repeat + 1} {target}: {result['jobs_per_s']} jobs/s, p50 {result['p50_ms']} ms, "
                  f"p99 {result['p99_ms']} ms, errors {result['error_total']}", flush=True)  # fmt: skip
    profiles = {}
    if args.profile:
        for target in (t for t in args.targets if t != "express"):
            profiled = await one(target, args, workdir, profile=True)
            profiles[target] = {"jobs_per_s_while_profiled": profiled["jobs_per_s"], **profiled.get("profile", {})}
    return {"runs": runs, "profiles": profiles}


def digest(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for target, results in runs.items():

        def median(key: str, rs: list[dict[str, Any]] = results) -> float:
            return round(statistics.median(r[key] for r in rs), 1)

        cpu_names = [k for k, v in results[0]["cpu"].items() if isinstance(v, dict)]
        out[target] = {
            "durable": results[0]["durable"],
            "jobs_per_s": median("jobs_per_s"),
            "jobs_per_s_runs": [r["jobs_per_s"] for r in results],
            "p50_ms": median("p50_ms"),
            "p99_ms": median("p99_ms"),
            "p99_ms_worst": max(r["p99_ms"] for r in results),
            "errors": sum(r["error_total"] for r in results),
            "cpu_ms_per_job": {
                name: round(statistics.median(r["cpu"][name]["cpu_ms_per_photo"] or 0 for r in results), 3)
                for name in cpu_names
            },
            "box_busy": round(statistics.median(r["cpu"]["box_busy"] or 0 for r in results), 3),
            "others_cores": round(statistics.median(r["cpu"].get("others_cores") or 0 for r in results), 2),
        }
        if target != "express":
            ok = out[target]
            ok["met"] = ok["jobs_per_s"] >= 1250 and ok["p99_ms_worst"] <= 100 and ok["errors"] == 0
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 s runs, 1 repeat (about 40 s)")
    parser.add_argument("--seconds", type=float, help="measured seconds per run (default 15; --quick 5)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds before each run (default 3; --quick 1)")
    parser.add_argument("--repeats", type=int, help="runs per target (default 3; --quick 1)")
    parser.add_argument("--targets", nargs="*", choices=TARGETS, default=list(TARGETS))
    parser.add_argument("--profile", action="store_true", help="one extra py-spy-recorded run per database")
    service_options(parser, whose="the gateway's")
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (5.0 if args.quick else 15.0)
    args.warmup = args.warmup or (1.0 if args.quick else 3.0)  # seconds of load before each measured run
    args.repeats = args.repeats or (1 if args.quick else 3)
    if "express" in args.targets:
        ensure_baseline()
    info = machine()
    started = time.time()
    with scratch(args.workdir, "bench-intake-") as workdir:
        measured = asyncio.run(run(args, workdir))
    summary = digest(measured["runs"])
    path = write_results(
        "intake",
        {
            "machine": info,
            "photo": describe("100k"),
            "quick": args.quick,
            "load": {
                "tool": "wrk",
                "threads": 1,
                "connections": CONNECTIONS,
                "seconds": args.seconds,
                "warmup": args.warmup,
            },
            "log_level": args.log_level,
            "goal": ">= 1,250 durable jobs/s on SQLite and on Postgres, p99 <= 100 ms, 0 errors (64 clients, 100 KB)",
            "notes": [
                "every 202 from the gateway: job + image stored, persistent message confirmed by RabbitMQ",
                "express: the non-durable baseline (nothing stored, non-persistent message, no confirm)",
                "DETECTBOT_MAX_QUEUE_LENGTH=1000000 so that a run's backlog never hits the queue's bound, and the "
                "client key's limits (MAX_INFLIGHT_PER_KEY, MAX_PER_MINUTE_PER_KEY) lifted; other settings are the "
                "product's defaults",
                "wrk, RabbitMQ and Postgres share the 2 CPUs with the gateway; 'others' is the rest of the box",
                "latency percentiles are wrk's (no coordinated-omission correction)",
            ],
            "targets": summary,
            "runs": measured["runs"],
            "profiles": measured["profiles"],
            "bench_seconds": round(time.time() - started, 1),
        },
        args.out,
    )
    rows = []
    for target, s in summary.items():
        cpu = s["cpu_ms_per_job"]
        rows.append([target, "yes" if s["durable"] else "no", s["jobs_per_s"], s["p50_ms"], s["p99_ms"], s["errors"],
                     cpu.get("gateway", cpu.get("express")), cpu.get("wrk"), cpu.get("rabbitmq (shared)"),
                     cpu.get("postgres (shared)"), s["box_busy"], s.get("met", "")])  # fmt: skip
    print(table(["target", "durable", "jobs/s", "p50 ms", "p99 ms", "errors", "server CPU ms/job", "wrk CPU ms/job",
                 "rabbitmq CPU ms/job", "postgres CPU ms/job", "box busy", "goal met"], rows))  # fmt: skip
    for target, prof in measured["profiles"].items():
        print(f"\n{target} gateway, top self time ({prof.get('samples')} samples, "
              f"{prof.get('jobs_per_s_while_profiled')} jobs/s while profiled)")  # fmt: skip
        for row in prof.get("top_self", [])[:12]:
            print(f"  {row['self_pct']:5.1f} %  {row['function']}")
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
