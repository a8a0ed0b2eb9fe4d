"""The whole product under load: Telegram update -> bot -> gateway -> RabbitMQ -> worker -> gateway -> sendPhoto.

    python -m benchmarks.bench_e2e [--quick] [--profile | --profile-all] [--sql]

Runs the Telegram Bot API wire fake (``tests/fakes/telegram_api.py``) in this process and ``detectbot
gateway`` (SQLite), ``detectbot worker`` and ``detectbot telegram`` as separate processes with product
defaults, pointed at the fake through ``DETECTBOT_TELEGRAM_API_URL`` / ``DETECTBOT_TELEGRAM_FILE_URL``. Photos
(the 100 KB benchmark photo, new bytes each) arrive as group-chat photos captioned ``/detect``, spread over
50 chats with 6 people each (Telegram paces about one message a second per chat; the gateway's per-person
limits allow 3 photos in line each). Phases, each run until every photo is delivered:

1. warm-up: one photo per chat;
2. saturated: a burst of ``--burst`` photos at once; capacity = photos / (last sendPhoto - first update);
3. Poisson arrivals at 10 %, 50 % and 80 % of that capacity.

Per photo: E2E = update injected -> the gateway's sendPhoto answered (both on this process's clock), the
bot's "queued" reply, and the stages from the job's own timestamps (received, queued, processing, done,
delivered). Per phase: CPU ms per photo and cores of every process (/proc; the worker with its inference
process), and peak RSS. Overhead = E2E - the bare-loop time (``bench_loop``, 1 process x 2 threads, measured
in the same run). ``--profile`` records the gateway with py-spy over phases 2-3 (``--profile-all``: the worker,
with its inference process, and the bot too) and writes the top functions; ``--sql`` runs the gateway under
``benchmarks.sqlcount`` and reports its SQL statements (count, time) per photo and phase. Both perturb the
numbers a little and are flagged in the JSON. Writes benchmarks/results/e2e.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import bench_loop, sqlcount
from benchmarks.photos import describe, photo, unique
from benchmarks.procstat import Profile, Sampler, find_pid
from benchmarks.support import (
    BOT_KEY,
    Service,
    count_status,
    database,
    detectbot_command,
    epoch_offset,
    free_port,
    gateway_env,
    machine,
    offline_model,
    poll_until,
    read_jobs,
    scratch,
    service_env,
    service_options,
    sql_snapshot,
    start_gateway,
    summary,
    table,
    topology,
    write_results,
)
from tests.fakes.telegram_api import FakeTelegram

CHATS = 50
USERS_PER_CHAT = 6
LOADS = (0.1, 0.5, 0.8)
SEED = 7
STAGES = ("bot_to_received", "received_to_queued", "queued_to_processing", "processing_to_done",
          "done_to_sendphoto", "sendphoto_to_delivered")  # fmt: skip


@dataclass
class Sent:
    """One photo sent by a person, and what became of it (times on this process's monotonic clock)."""

    chat_id: int
    user_id: int
    message_id: int
    injected: float
    acked: float | None = None  # the bot's reply ("Queued …")
    delivered: float | None = None  # the gateway's sendPhoto, answered


class Watch:
    """Reads the fake's call log: matches the bot's replies and the gateway's sendPhoto to the photos."""

    def __init__(self, fake: FakeTelegram) -> None:
        self.fake = fake
        self.seen = 0
        self.photos: dict[tuple[int, int], Sent] = {}
        self.methods: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def scan(self) -> None:
        calls = self.fake.calls
        for call in calls[self.seen :]:
            self.methods[call.method] += 1
            if not call.ok:
                self.errors[f"{call.method} {call.status}: {str(call.result)[:80]}"] += 1
                continue
            reply = call.params.get("reply_parameters")
            if not isinstance(reply, dict):
                continue
            sent = self.photos.get((call.params.get("chat_id"), reply.get("message_id")))  # type: ignore[arg-type]
            if sent is None:
                continue
            if call.method == "sendPhoto" and sent.delivered is None:
                sent.delivered = call.at
            elif call.method == "sendMessage" and sent.acked is None:
                sent.acked = call.at
        self.seen = len(calls)


class Stack:
    """The fake, the three services, and the phases run through them."""

    def __init__(self, fake: FakeTelegram, services: dict[str, Service], url: str, sampler: Sampler) -> None:
        self.fake = fake
        self.services = services
        self.url = url
        self.sampler = sampler
        self.watch = Watch(fake)
        self.serial = 0
        self.delivered_total = 0
        self.offset = epoch_offset()
        self.sql_file: Path | None = None  # the gateway's SQL counts, with --sql

    def send(self, chat: int, user: int) -> Sent:
        chat_id, user_id = -(100_000 + chat), 700_000 + chat * USERS_PER_CHAT + user
        data = unique(photo("100k"), self.serial)
        self.serial += 1
        update = self.fake.send_photo_update(chat_id, data=data, user_id=user_id, caption="/detect", chat_type="group")
        sent = Sent(chat_id, user_id, int(update["message"]["message_id"]), time.monotonic())
        self.watch.photos[(chat_id, sent.message_id)] = sent
        return sent

    async def measured(self, name: str, arrivals: list[tuple[float, int, int]], bare_ms: float) -> dict[str, Any]:
        """One phase and its report (with the gateway's SQL statements per photo under --sql)."""
        before = await sql_snapshot(self.services["gateway"], self.sql_file) if self.sql_file else None
        sent, rows = await self.phase(arrivals)
        report = self.report(name, sent, rows, bare_ms)
        if before is not None and self.sql_file is not None:
            after = await sql_snapshot(self.services["gateway"], self.sql_file)
            report["gateway_sql"] = sqlcount.diff(before, after, max(report["delivered"], 1))
        return report

    async def phase(self, arrivals: list[tuple[float, int, int]]) -> tuple[list[Sent], dict[tuple[int, int], dict]]:
        """Send photos at their arrival offsets (s); wait until all are delivered; their job rows by photo."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        sent: list[Sent] = []
        for offset, chat, user in arrivals:
            delay = start + offset - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # the arrival schedule
            sent.append(self.send(chat, user))

        def all_delivered() -> bool:
            self.watch.scan()
            return all(s.delivered is not None for s in sent)

        services = list(self.services.values())
        with contextlib.suppress(TimeoutError):
            await poll_until(all_delivered, 60 + len(sent) / 2, "every sendPhoto", every=0.05, services=services)
        self.delivered_total += sum(1 for s in sent if s.delivered is not None)
        with contextlib.suppress(TimeoutError):
            await poll_until(lambda: count_status(self.url, ["delivered"]) >= self.delivered_total, 30,
                             "the deliveries recorded", every=0.1, services=services)  # fmt: skip
        keys = {(s.chat_id, s.message_id) for s in sent}
        rows = {}
        for row in read_jobs(self.url):
            origin = row["origin"] or {}
            key = (int(origin.get("chat_id", 0)), int(origin.get("message_id", 0)))
            if key in keys:
                rows[key] = row
        return sent, rows

    def report(self, name: str, sent: list[Sent], rows: dict[tuple[int, int], dict], bare_ms: float) -> dict:
        """Throughput, latency (E2E, the bot's reply, every stage), pacing, and CPU of the phase."""
        done = [s for s in sent if s.delivered is not None]
        first = min(s.injected for s in sent)
        last = max((s.delivered for s in done), default=first)  # type: ignore[type-var]
        e2e = [(s.delivered - s.injected) * 1000 for s in done]  # type: ignore[operator]
        stages: dict[str, list[float]] = defaultdict(list)
        outside = []  # E2E minus the worker's part (processing -> done)
        for s in done:
            row = rows.get((s.chat_id, s.message_id))
            if row is not None and row["delivered_at"]:
                split = _stages(s, row, self.offset)
                for stage, ms in split.items():
                    stages[stage].append(ms)
                outside.append(((s.delivered or 0.0) - s.injected) * 1000 - split["processing_to_done"])
        recorded = [r["delivered_at"] for r in rows.values() if r["delivered_at"]]
        end = max(recorded, default=last + self.offset)
        return {
            "phase": name,
            "photos": len(sent),
            "delivered": len(done),
            "jobs_found": len(rows),
            "seconds": round(last - first, 2),
            "photos_per_s": round(len(done) / (last - first), 2) if last > first else None,
            "steady_photos_per_s": _steady(done),
            "e2e_ms": summary(e2e),
            "overhead_ms_p50": round(statistics.median(e2e) - bare_ms, 1) if e2e else None,
            "e2e_minus_processing_ms": summary(outside),
            "bot_reply_ms": summary([(s.acked - s.injected) * 1000 for s in sent if s.acked is not None]),
            "stages_ms": {stage: summary(stages[stage]) for stage in STAGES},
            "paced": _paced(done, rows, self.offset),
            "cpu": self.sampler.cpu_report(first + self.offset, end, len(done)),
        }


def _steady(done: list[Sent]) -> float | None:
    """Deliveries per second between the first and the last sendPhoto (no pipeline fill)."""
    times = sorted(s.delivered for s in done if s.delivered is not None)
    return round((len(times) - 1) / (times[-1] - times[0]), 2) if len(times) > 1 and times[-1] > times[0] else None


def _stages(s: Sent, row: dict[str, Any], offset: float) -> dict[str, float]:
    injected, delivered = s.injected + offset, (s.delivered or 0.0) + offset
    return {
        "bot_to_received": (row["received_at"] - injected) * 1000,
        "received_to_queued": (row["queued_at"] - row["received_at"]) * 1000,
        "queued_to_processing": (row["processing_at"] - row["queued_at"]) * 1000,
        "processing_to_done": (row["done_at"] - row["processing_at"]) * 1000,
        "done_to_sendphoto": (delivered - row["done_at"]) * 1000,
        "sendphoto_to_delivered": (row["delivered_at"] - delivered) * 1000,
    }


def _paced(done: list[Sent], rows: dict[tuple[int, int], dict], offset: float) -> dict[str, Any]:
    """Photos finished less than 1 s after their chat's previous delivery (so the per-chat pacing held them)."""
    by_chat: dict[int, list[Sent]] = defaultdict(list)
    for s in done:
        by_chat[s.chat_id].append(s)
    held = 0
    for photos in by_chat.values():
        photos.sort(key=lambda s: s.delivered or 0.0)
        for previous, current in itertools.pairwise(photos):
            row = rows.get((current.chat_id, current.message_id))
            if row and row["done_at"] and row["done_at"] - offset < (previous.delivered or 0.0) + 1.0:
                held += 1
    return {"photos": held, "share": round(held / len(done), 3) if done else None}


# --- arrivals -----------------------------------------------------------------------------------------------


def burst(count: int) -> list[tuple[float, int, int]]:
    """All at once, round-robin over the chats and their people (one photo per person for up to 300)."""
    return [(0.0, i % CHATS, (i // CHATS) % USERS_PER_CHAT) for i in range(count)]


def poisson(rate: float, seconds: float, seed: int) -> list[tuple[float, int, int]]:
    """Poisson arrivals at ``rate`` per second for ``seconds``, each from a random chat and person (seeded)."""
    rng = random.Random(seed)
    out: list[tuple[float, int, int]] = []
    at = rng.expovariate(rate)
    while at < seconds:
        out.append((at, rng.randrange(CHATS), rng.randrange(USERS_PER_CHAT)))
        at += rng.expovariate(rate)
    return out


# --- the run ------------------------------------------------------------------------------------------------


async def start_stack(stack: contextlib.AsyncExitStack, args: argparse.Namespace, model: Path, workdir: Path,
                      sampler: Sampler) -> Stack:  # fmt: skip
    fake = await stack.enter_async_context(FakeTelegram())
    queue = await stack.enter_async_context(topology("e2e"))
    url = await stack.enter_async_context(database("sqlite", workdir))
    telegram = {
        "telegram_token": fake.token,
        "telegram_api_url": fake.base_url,
        "telegram_file_url": fake.base_file_url,
    }
    env = gateway_env(database_url=url, queue=queue, port=free_port(), data_dir=workdir / "gateway",
                      log_level=args.log_level, **telegram)  # fmt: skip
    gateway, base = await start_gateway(env, workdir, sql_out=workdir / "gateway-sql.json" if args.sql else None)
    stack.push_async_callback(gateway.stop)
    worker_env = service_env(gateway_url=base, queue=queue, model=str(model), data_dir=str(workdir / "worker"),
                             log_level=args.log_level)  # fmt: skip
    worker = await Service.start("worker", detectbot_command("worker"), worker_env, workdir)
    stack.push_async_callback(worker.stop)
    bot_env = service_env(gateway_url=base, api_key=BOT_KEY, data_dir=str(workdir / "bot"), log_level=args.log_level,
                          **telegram)  # fmt: skip
    bot = await Service.start("bot", detectbot_command("telegram"), bot_env, workdir)
    stack.push_async_callback(bot.stop)
    await fake.wait_until_polling(timeout=60)
    services = {"gateway": gateway, "worker": worker, "bot": bot}
    for name, service in services.items():
        sampler.watch(name, service.pid)
    sampler.watch("benchmark (fake Telegram + load)", os.getpid(), children=False)
    if (broker := find_pid("beam.smp")) is not None:
        sampler.watch("rabbitmq (shared with other users)", broker)
    e2e = Stack(fake, services, url, sampler)
    e2e.sql_file = workdir / "gateway-sql.json" if args.sql else None
    return e2e


async def profiles_start(args: argparse.Namespace, stack: Stack, workdir: Path) -> list[tuple[str, Profile]]:
    wanted = ["gateway", "worker", "bot"] if args.profile_all else ["gateway"] if args.profile else []
    profiles = []
    for name in wanted:
        profile = Profile(stack.services[name].pid, workdir / f"{name}.pyspy.txt", subprocesses=name == "worker")
        await profile.start()
        profiles.append((name, profile))
    return profiles


async def run(args: argparse.Namespace, model: Path, bare_ms: float, workdir: Path) -> dict[str, Any]:
    sampler = Sampler()
    sampler.start()
    results: dict[str, Any] = {}
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(sampler.stop)
        e2e = await start_stack(stack, args, model, workdir, sampler)
        warm = [(i * 0.1, i, 0) for i in range(CHATS)]
        sent, rows = await e2e.phase(warm)
        results["warmup"] = e2e.report("warm-up", sent, rows, bare_ms)
        print(f"  warm-up: {results['warmup']['delivered']}/{len(sent)} delivered", flush=True)
        profiles = await profiles_start(args, e2e, workdir)
        results["saturated"] = []
        for repeat in range(args.repeats):
            results["saturated"].append(await e2e.measured(f"burst {repeat + 1}", burst(args.burst), bare_ms))
            print(f"  burst {repeat + 1}: {results['saturated'][-1]['photos_per_s']} photos/s", flush=True)
        capacity = statistics.median(r["photos_per_s"] or 0.0 for r in results["saturated"])
        results["loads"] = []
        for index, share in enumerate(LOADS):
            seconds = args.seconds * (1.5 if share < 0.2 else 1.0)
            arrivals = poisson(share * capacity, seconds, SEED + index)
            report = await e2e.measured(f"{round(share * 100)} %", arrivals, bare_ms)
            results["loads"].append({"share_of_capacity": share, "rate_per_s": round(share * capacity, 2), **report})
            print(f"  {report['phase']}: e2e p50 {report['e2e_ms'].get('p50')} ms, p95 {report['e2e_ms'].get('p95')}"
                  f" ms over {report['photos']} photos", flush=True)  # fmt: skip
        results["profiles"] = {name: await profile.stop() for name, profile in profiles}
        results["capacity_photos_per_s"] = round(capacity, 2)
        results["memory"] = sampler.memory_report()
        e2e.watch.scan()
        results["telegram_calls"] = dict(e2e.watch.methods)
        results["telegram_errors"] = dict(e2e.watch.errors)
    return results


def goals(results: dict[str, Any], bare: dict[str, Any]) -> dict[str, Any]:
    baseline, bare_ms = bare["baseline_photos_per_s"], bare["bare_ms_per_photo"]
    loads = {round(r["share_of_capacity"] * 100): r for r in results["loads"]}
    gateway_cpu = statistics.median(r["cpu"]["gateway"]["cpu_ms_per_photo"] for r in results["saturated"])
    saturated = round(results["capacity_photos_per_s"] / baseline, 3)
    overhead = loads[10]["overhead_ms_p50"]
    p95_50 = loads[50]["e2e_ms"].get("p95")

    def goal(value: Any, target: str, met: bool) -> dict[str, Any]:
        return {"value": value, "goal": target, "met": met}

    return {
        "saturated_over_bare": goal(saturated, ">= 0.8", saturated >= 0.8),
        "overhead_p50_ms_at_10pct": goal(overhead, "<= 25", overhead is not None and overhead <= 25),
        "p95_ms_at_50pct": goal(p95_50, f"<= 3 x {bare_ms}", p95_50 is not None and p95_50 <= 3 * bare_ms),
        "gateway_cpu_ms_per_photo_saturated": goal(round(gateway_cpu, 2), "<= 10", gateway_cpu <= 10),
    }


def print_tables(results: dict[str, Any], goal: dict[str, Any]) -> None:
    phases = [*results["saturated"], *results["loads"]]
    rows = []
    for r in phases:
        e, s = r["e2e_ms"], r["stages_ms"]
        latency = [e.get("p50"), e.get("p95"), r["overhead_ms_p50"], r["bot_reply_ms"].get("p50")]
        stage_p50 = [s[stage].get("p50") for stage in STAGES]
        rows.append([r["phase"], r["photos"], r["photos_per_s"], *latency, *stage_p50, r["paced"]["photos"]])
    print(table(["phase", "photos", "photos/s", "E2E p50", "E2E p95", "overhead p50", "bot reply p50",
                 "update->received", "->queued", "->processing", "->done", "->sendPhoto", "->recorded", "paced"],
                rows))  # fmt: skip
    names = [name for name, value in phases[0]["cpu"].items() if isinstance(value, dict)]
    cpu_rows = [[r["phase"], *(r["cpu"].get(n, {}).get("cpu_ms_per_photo") for n in names), r["cpu"]["box_busy"],
                 r["cpu"].get("others_cores")] for r in phases]  # fmt: skip
    print()
    print(table(["CPU ms per photo", *names, "box busy", "others (cores)"], cpu_rows))
    print()
    print(table(["process", "peak tree RSS MB"], [[k, v["peak_tree_rss_mb"]] for k, v in results["memory"].items()]))
    print()
    print(table(["goal", "value", "target", "met"], [[k, v["value"], v["goal"], v["met"]] for k, v in goal.items()]))
    for r in phases:
        if "gateway_sql" in r:
            sql = r["gateway_sql"]
            print(f"\n{r['phase']}: gateway SQL {sql['statements_per_photo']} statements, {sql['ms_per_photo']} ms "
                  "per photo; most time:")  # fmt: skip
            for row in sql["top"][:8]:
                print(f"  {row['per_photo']:5.2f}/photo {row['ms_per_photo']:7.3f} ms  {row['statement'][:100]}")
    for name, prof in results.get("profiles", {}).items():
        print(f"\n{name}: top self time ({prof.get('samples')} samples)")
        for row in prof.get("top_self", [])[:12]:
            print(f"  {row['self_pct']:5.1f} %  {row['function']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 60-photo burst, 8 s per load (about 1 min)")
    parser.add_argument("--burst", type=int, help="photos in the saturated burst (default 300; --quick 60)")
    parser.add_argument("--repeats", type=int, help="bursts (default 2; --quick 1)")
    parser.add_argument("--seconds", type=float, help="seconds per load phase, x1.5 at 10 %% (default 30; --quick 8)")
    parser.add_argument("--profile", action="store_true", help="py-spy the gateway over the burst and the loads")
    parser.add_argument("--profile-all", action="store_true", help="py-spy the gateway, the worker and the bot")
    parser.add_argument("--sql", action="store_true", help="count the gateway's SQL statements per photo")
    service_options(parser)
    args = parser.parse_args(argv)
    args.burst = args.burst or (60 if args.quick else 300)
    args.repeats = args.repeats or (1 if args.quick else 2)
    args.seconds = args.seconds or (8.0 if args.quick else 30.0)
    info = machine()
    started = time.time()
    model = offline_model()
    bare = bench_loop.baseline(quick=args.quick, model=model)
    with scratch(args.workdir, "bench-e2e-") as workdir:
        results = asyncio.run(run(args, model, bare["bare_ms_per_photo"], workdir))
    goal = goals(results, bare)
    path = write_results(
        "e2e",
        {
            "machine": info,
            "photo": describe("100k"),
            "quick": args.quick,
            "profiled": bool(args.profile or args.profile_all),
            "sql_counted": args.sql,
            "log_level": args.log_level,
            "chats": CHATS,
            "people_per_chat": USERS_PER_CHAT,
            "goals": goal,
            "notes": [
                "E2E = the fake's update injected -> the gateway's sendPhoto answered by the fake (one clock)",
                "stages from the job row: update->received_at (bot: getUpdates, getFile, download, POST; intake) "
                "-> queued_at (publisher confirm) -> processing_at (worker fetched the input) -> done_at (result "
                "stored) -> sendPhoto (delivery loop, pacing, editMessageText, sendPhoto) -> delivered_at (receipt)",
                "overhead = E2E p50 - the bare-loop time (bench_loop 1x2 p50 in this run)",
                "paced = photos finished < 1 s after their chat's previous delivery (held by per-chat pacing)",
                "CPU from /proc utime+stime per process tree over the phase; 'box busy' is all CPUs (1.0 = both "
                "cores), including other users of this shared box",
                "profiled runs carry py-spy's sampling overhead",
            ],
            "bare_loop": bare,
            **results,
            "bench_seconds": round(time.time() - started, 1),
        },
        args.out,
    )
    print_tables(results, goal)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
