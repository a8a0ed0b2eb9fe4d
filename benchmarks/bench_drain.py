"""One worker draining a backlog: jobs/s against the bare model loop, measured in the same run.

    python -m benchmarks.bench_drain [--quick] [--jobs 300] [--repeats 2] [--profile] [--sql]

Starts ``detectbot gateway`` (SQLite, a fresh queue; the client key's fair share and per-minute limit raised
so that the whole backlog lies in the broker) with no worker, queues ``--jobs`` jobs of the 100 KB benchmark
photo (each one new bytes, so the result cache never answers), then starts one ``detectbot worker``
and waits until every job is done. The drain rate comes from the jobs' own timestamps: jobs / (last
``done_at`` - first ``processing_at``), so the worker's start-up is left out. Worker layouts, interleaved:

* ``default``: product defaults (one slot per CPU, 1 ONNX Runtime thread each: 2 slots on a 2-core box);
* ``threads=1``: ``DETECTBOT_INFER_THREADS=1``;
* ``slots=2``: ``--slots 2`` (1 thread each by default);
* ``slots=2 threads=2``: ``--slots 2`` with ``DETECTBOT_INFER_THREADS=2`` (oversubscribed on purpose).

Also the CPU ms per job and the peak RSS of the gateway and of the worker: its main process (fetch, hand-off,
upload) and its inference processes apart (/proc), the latter against the CPU of detection alone in the bare
loop (goal: at most 1.2x). The goal of the drain: the default worker drains at >= 0.95 of the bare loop's
throughput (``bench_loop``'s baseline, the better of 1x2 and 2x1), with the default model (NanoDet-g).
``--profile`` adds one more default drain (kept out of the medians) with py-spy on the gateway and the worker
(with its inference processes); ``--sql`` counts the gateway's SQL statements per job (``benchmarks.sqlcount``).
Writes benchmarks/results/drain.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import bench_loop, sqlcount
from benchmarks.photos import describe, photo, unique
from benchmarks.procstat import Profile, Sampler
from benchmarks.support import (
    UNLIMITED_CLIENT_KEY,
    Service,
    count_status,
    database,
    detectbot_command,
    free_port,
    gateway_env,
    machine,
    model_name,
    offline_model,
    poll_until,
    ratio,
    read_jobs,
    scratch,
    service_env,
    service_options,
    sql_snapshot,
    start_gateway,
    submit_photos,
    summary,
    table,
    topology,
    write_results,
)

VARIANTS: tuple[tuple[str, tuple[str, ...], dict[str, str]], ...] = (
    ("default", (), {}),
    ("threads=1", (), {"infer_threads": "1"}),
    ("slots=2", ("--slots", "2"), {}),
    ("slots=2 threads=2", ("--slots", "2"), {"infer_threads": "2"}),
)


class Drain:
    """One gateway (no worker), and the rounds run against it."""

    def __init__(self, gateway: Service, base: str, url: str, queue: str, workdir: Path, sampler: Sampler,
                 log_level: str) -> None:  # fmt: skip
        self.gateway = gateway
        self.gateway_pid = gateway.pid
        self.sql_file: Path | None = None
        self.base, self.url, self.queue, self.workdir = base, url, queue, workdir
        self.sampler = sampler
        self.log_level = log_level
        self.serial = 0

    async def round(
        self, name: str, args: tuple[str, ...], extra: dict[str, str], jobs: int, model: Path, *, profile: bool = False
    ) -> dict:
        data = photo("100k")
        photos = [unique(data, self.serial + i) for i in range(jobs)]
        self.serial += jobs
        submitted = time.time()
        ids = set(await submit_photos(self.base, photos))
        await poll_until(lambda: count_status(self.url, ["queued"]) >= jobs, 60, "every job queued")
        before = await sql_snapshot(self.gateway, self.sql_file) if self.sql_file else None
        env = service_env(
            gateway_url=self.base, queue=self.queue, model=str(model), data_dir=str(self.workdir / "worker"),
            log_level=self.log_level, **extra,
        )  # fmt: skip
        label = f"worker {name} #{self.serial // jobs}"
        started = time.time()
        worker = await Service.start(label.replace(" ", "-"), detectbot_command("worker", *args), env, self.workdir)
        self.sampler.watch(label, worker.pid, split="inference")
        profiles = [("gateway", Profile(self.gateway_pid, self.workdir / "gateway.pyspy.txt")),
                    ("worker", Profile(worker.pid, self.workdir / "worker.pyspy.txt", subprocesses=True))]  # fmt: skip
        for _, profiler in profiles if profile else []:
            await profiler.start()
        try:
            await poll_until(lambda: count_status(self.url, ["done", "failed"]) >= self.serial, jobs / 2 + 120,
                             f"{jobs} jobs done by {label}", every=0.2, services=[worker])  # fmt: skip
            rows = [r for r in read_jobs(self.url) if r["id"] in ids]
            hot = {name: await profiler.stop() for name, profiler in profiles} if profile else None
        finally:
            await worker.stop()
        self.sampler.sample()
        memory = self.sampler.memory_report()[label]
        result = self._result(name, rows, memory, label, started, submitted)
        if before is not None and self.sql_file is not None:
            result["gateway_sql"] = sqlcount.diff(before, await sql_snapshot(self.gateway, self.sql_file), len(rows))
        return {**result, "profiles": hot} if hot else result

    def _result(self, name: str, rows: list[dict], memory: dict, label: str, started: float, submitted: float) -> dict:
        failed = [r for r in rows if r["status"] != "done"]
        first = min(r["processing_at"] for r in rows)
        last = max(r["done_at"] or r["processing_at"] for r in rows)
        done = sorted(r["done_at"] for r in rows if r["done_at"])
        span = last - first
        cpu = self.sampler.cpu_report(first, last, len(rows))
        self.sampler.forget(label)
        return {
            "variant": name,
            "jobs": len(rows),
            "failed": len(failed),
            "drain_s": round(span, 2),
            "jobs_per_s": round(len(rows) / span, 2),
            "steady_jobs_per_s": round((len(done) - 1) / (done[-1] - done[0]), 2) if len(done) > 1 else None,
            "worker_start_s": round(first - started, 2),
            "queueing_s": round(started - submitted, 2),
            "processing_ms": summary([(r["done_at"] - r["processing_at"]) * 1000 for r in rows if r["done_at"]]),
            "inference_ms": summary([r["inference_ms"] for r in rows if r["inference_ms"] is not None]),
            "cpu": {("worker" if key == label else key): value for key, value in cpu.items() if key != "parts"},
            "cpu_parts": {key.replace(label, "worker"): value for key, value in cpu["parts"].items()},
            "worker_memory": memory,
        }


async def run(args: argparse.Namespace, model: Path, workdir: Path) -> dict[str, Any]:
    sampler = Sampler()
    sampler.start()
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in VARIANTS}
    try:
        async with topology("drain") as queue, database("sqlite", workdir) as url:
            # the whole backlog in the broker (the drain measures the worker alone), every round accepted
            env = gateway_env(database_url=url, queue=queue, port=free_port(), data_dir=workdir / "gateway",
                              log_level=args.log_level, **UNLIMITED_CLIENT_KEY)  # fmt: skip
            sql_file = workdir / "gateway-sql.json" if args.sql else None
            gateway, base = await start_gateway(env, workdir, sql_out=sql_file)
            sampler.watch("gateway", gateway.pid)
            try:
                drain = Drain(gateway, base, url, queue, workdir, sampler, args.log_level)
                drain.sql_file = sql_file
                for repeat in range(args.repeats):
                    for name, extra_args, extra_env in VARIANTS:
                        if args.variants and name not in args.variants:
                            continue
                        result = await drain.round(name, extra_args, extra_env, args.jobs, model)
                        print(f"  repeat {repeat + 1} {name}: {result['jobs_per_s']} jobs/s", flush=True)
                        rounds[name].append(result)
                gateway_memory = sampler.memory_report()["gateway"]
                profiled = await drain.round("default", (), {}, args.jobs, model, profile=True) if args.profile else {}
            finally:
                await gateway.stop()
    finally:
        await sampler.stop()
    profiles = {"jobs_per_s_while_profiled": profiled["jobs_per_s"], **profiled["profiles"]} if profiled else {}
    return {"rounds": {k: v for k, v in rounds.items() if v}, "gateway_memory": gateway_memory, "profiles": profiles}


def digest(
    rounds: dict[str, list[dict[str, Any]]], baseline: float, bare_1x2: float, detect_ms: float
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, runs in rounds.items():
        rate = statistics.median(r["jobs_per_s"] for r in runs)
        out[name] = {
            "jobs_per_s": round(rate, 2),
            "jobs_per_s_runs": [r["jobs_per_s"] for r in runs],
            "ratio_to_bare_baseline": ratio(rate, baseline),
            "ratio_to_bare_1x2": ratio(rate, bare_1x2),
            "gateway_cpu_ms_per_job": round(statistics.median(_cpu(r, "gateway") for r in runs), 2),
            "worker_cpu_ms_per_job": round(statistics.median(_cpu(r, "worker") for r in runs), 2),
            "worker_main_cpu_ms_per_job": round(statistics.median(_part(r, "worker main") for r in runs), 2),
            "inference_cpu_ms_per_job": round(statistics.median(_part(r, "inference") for r in runs), 2),
            "inference_over_detect": ratio(statistics.median(_part(r, "inference") for r in runs), detect_ms),
            "worker_peak_tree_rss_mb": max(r["worker_memory"]["peak_tree_rss_mb"] for r in runs),
            "processing_ms_p50": round(statistics.median(r["processing_ms"]["p50"] for r in runs), 1),
            "inference_ms_p50": round(statistics.median(r["inference_ms"]["p50"] for r in runs), 1),
            "others_load_cores": round(statistics.median(r["cpu"]["others_cores"] for r in runs), 2),
        }
    return out


def _cpu(result: dict[str, Any], name: str) -> float:
    return float(result["cpu"][name]["cpu_ms_per_photo"])


def _part(result: dict[str, Any], name: str) -> float:
    return float(result["cpu_parts"][name]["cpu_ms_per_photo"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="60 jobs, 1 repeat, a short bare loop (about 1 min)")
    parser.add_argument("--jobs", type=int, help="jobs per drain (default 300; --quick 60)")
    parser.add_argument("--repeats", type=int, help="drains per variant (default 2; --quick 1)")
    parser.add_argument("--variants", nargs="*", choices=[name for name, _, _ in VARIANTS], help="only these")
    parser.add_argument("--profile", action="store_true", help="one extra default drain with py-spy on gateway+worker")
    parser.add_argument("--sql", action="store_true", help="count the gateway's SQL statements per job")
    service_options(parser)
    args = parser.parse_args(argv)
    args.jobs = args.jobs or (60 if args.quick else 300)
    args.repeats = args.repeats or (1 if args.quick else 2)
    info = machine()
    started = time.time()
    model = offline_model()
    bare = bench_loop.baseline(quick=args.quick, model=model)
    with scratch(args.workdir, "bench-drain-") as workdir:
        measured = asyncio.run(run(args, model, workdir))
    variants = digest(measured["rounds"], bare["baseline_photos_per_s"], bare["variants"]["1x2"]["photos_per_s"],
                      bare["detect_cpu_ms_per_photo"])  # fmt: skip
    default = variants.get("default", {})
    path = write_results(
        "drain",
        {
            "machine": info,
            "photo": describe("100k"),
            "model": model_name(model),
            "quick": args.quick,
            "jobs_per_drain": args.jobs,
            "log_level": args.log_level,
            "profiled_round_extra": args.profile,
            "sql_counted": args.sql,
            "goal": "default worker drain >= 0.95 x the bare loop (baseline: better of 1x2 and 2x1)",
            "met": bool(default) and (default["ratio_to_bare_baseline"] or 0) >= 0.95,
            "notes": [
                "jobs/s = jobs / (last done_at - first processing_at); steady = (n-1) / (last - first done_at)",
                "processing_ms = done_at - processing_at per job (fetch, inference in the slot process, upload)",
                "CPU ms per job from /proc utime+stime over the drain window; the worker includes its inference "
                "processes; worker main and inference apart; inference_over_detect = inference CPU per job / the "
                "bare loop's detect CPU per photo (2x1)",
                "others_load_cores: what the rest of the box used meanwhile (the 2 CPUs are shared)",
            ],
            "bare_loop": bare,
            "variants": variants,
            "gateway_memory": measured["gateway_memory"],
            "profiles": measured["profiles"],
            "rounds": measured["rounds"],
            "bench_seconds": round(time.time() - started, 1),
        },
        args.out,
    )
    rows = [
        [name, v["jobs_per_s"], v["ratio_to_bare_baseline"], v["ratio_to_bare_1x2"], v["processing_ms_p50"],
         v["inference_ms_p50"], v["gateway_cpu_ms_per_job"], v["worker_main_cpu_ms_per_job"],
         v["inference_cpu_ms_per_job"], v["inference_over_detect"], v["worker_peak_tree_rss_mb"],
         v["others_load_cores"]]
        for name, v in variants.items()
    ]  # fmt: skip
    headers = ["worker", "jobs/s", "/ bare baseline", "/ bare 1x2", "processing ms p50", "inference ms p50",
               "gateway CPU ms/job", "worker main CPU ms/job", "inference CPU ms/job", "inference / detect alone",
               "worker peak RSS MB", "others' load (cores)"]  # fmt: skip
    print(table(headers, rows))
    print(f"\nbare loop: baseline {bare['baseline_variant']} {bare['baseline_photos_per_s']} photos/s, "
          f"1x2 {bare['variants']['1x2']['photos_per_s']} photos/s; gateway peak RSS "
          f"{measured['gateway_memory']['peak_tree_rss_mb']} MB")  # fmt: skip
    for name, runs in measured["rounds"].items():
        if "gateway_sql" in runs[0]:
            sql = runs[0]["gateway_sql"]
            print(f"\n{name}: gateway SQL {sql['statements_per_photo']} statements, {sql['ms_per_photo']} ms per job")
            for row in sql["top"][:8]:
                print(f"  {row['per_photo']:5.2f}/job {row['ms_per_photo']:7.3f} ms  {row['statement'][:100]}")
    for name, prof in measured["profiles"].items():
        if isinstance(prof, dict):
            print(f"\n{name}: top self time ({prof.get('samples')} samples)")
            for row in prof.get("top_self", [])[:12]:
                print(f"  {row['self_pct']:5.1f} %  {row['function']}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
