"""A photo's life in the database alone, step by step as the gateway runs it: CPU per photo on SQLite.

    python -m benchmarks.bench_statements [--photos 400] [--rounds 3]

Each photo, through ``queue_gateway.database.Database`` on an engine made as the gateway makes one (the one-hop
SQLite driver, WAL, synchronous=FULL): intake (``queue_gateway.intake.Intake``: the photo into the blob store,
the batch's transaction with its reads, a publish that this benchmark's broker confirms at once, and the
confirm's transaction), the bot's status message, the worker's start (which finds the input photo), its result
(the annotated image's blob rows) and the receipt, each step its own transaction. Two flows, in alternating
rounds of one run:

- ``handoff`` (the gateway's): the worker's start reads the input in its UPDATE's RETURNING, and the result's
  statement leases the delivery to its replica;
- ``loop`` (the flow before): the start's UPDATE and then a read of the input, the result, and the delivery loop's
  lease in a transaction of its own.

Measured: this process's CPU (event loop, greenlets and the SQLite thread) per photo, and the wall time of each
step. No broker, no HTTP: what the database layer itself costs the gateway. Writes
benchmarks/results/statements.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any, Literal

from benchmarks.support import machine, table, write_results
from db import deliveries, jobs, transitions
from db.blobstore import FileBlobStore, StoredBlob
from db.engine import create_engine, session_factory
from db.migrate import upgrade_engine
from queue_gateway.database import Database
from queue_gateway.intake import Intake

Flow = Literal["handoff", "loop"]
PHOTO = b"\xff\xd8" + bytes(range(256)) * 400 + b"\xff\xd9"  # the bytes only go to the blob store
FLOWS: tuple[Flow, ...] = ("handoff", "loop")
BOXES = [{"class_id": 0, "label": "person", "confidence": 0.9, "box": [1.0, 2.0, 3.0, 4.0]}] * 4


def new_job(number: int) -> jobs.NewJob:
    chat = str(number % 50)
    return jobs.NewJob(
        id=uuid.uuid4().hex, platform="telegram", image=PHOTO, image_sha256=uuid.uuid4().hex, image_format="JPEG",
        content_type="image/jpeg", width=1280, height=960, user_ref=f"telegram:{chat}",
        origin={"platform": "telegram", "chat_id": chat, "user_id": chat, "message_id": "7"},
    )  # fmt: skip


class Confirming:
    """The broker, as intake's publisher: every message confirmed at once (this benchmark measures the database)."""

    async def publish(self, job_id: str, params: Any, **options: Any) -> None:
        return None


async def one_photo(
    database: Database, intake: Intake, number: int, steps: dict[str, list[float]], flow: Flow = "handoff"
) -> None:
    new = new_job(number)
    new.image = PHOTO + number.to_bytes(4, "big")
    result_bytes = PHOTO[::-1] + number.to_bytes(4, "big")
    result = StoredBlob(await database.blobs.put(result_bytes), result_bytes, "image/jpeg")

    async def timed(step: str, work: Any) -> Any:
        started, cpu = time.perf_counter(), time.process_time()
        value = await database.write(work)
        steps[step].append((time.perf_counter() - started) * 1000)
        steps[f"{step} (CPU)"].append((time.process_time() - cpu) * 1000)
        return value

    async def start_then_read(session: Any) -> Any:  # the flow before: the input read after the start
        outcome = await transitions.start_attempt(session, new.id, worker="w", max_attempts=3)
        return outcome, await jobs.get_blob(session, new.id, "input")

    handoff = transitions.Handoff(owner="bench", seconds=30) if flow == "handoff" else None
    started, cpu = time.perf_counter(), time.process_time()
    if (await intake.submit(new)).status != "queued":
        raise RuntimeError(f"photo {number}: intake did not queue it")
    steps["intake + publish confirm"].append((time.perf_counter() - started) * 1000)
    steps["intake + publish confirm (CPU)"].append((time.process_time() - cpu) * 1000)
    await timed("status message", lambda s: deliveries.set_status_message(s, new.id, "8"))
    if flow == "handoff":
        _, found = await timed("worker start", lambda s: transitions.start_fetch(s, new.id, worker="w", max_attempts=3))
    else:
        _, found = await timed("worker start", start_then_read)
    if found is None:
        raise RuntimeError(f"photo {number}: the worker's start found no input")
    _, finished = await timed(
        "result",
        lambda s: transitions.complete(
            s, database.blobs, new.id, detections=BOXES, model="m", worker="w", inference_ms=20.0, image=result,
            handoff=handoff,
        ),
    )  # fmt: skip
    if flow == "handoff":
        leased = [finished.leased] if finished is not None and finished.leased is not None else []
    else:
        leased = await timed("lease", lambda s: deliveries.lease_due(s, owner="bench", seconds=30, limit=16))
    if [job.id for job in leased] != [new.id]:
        raise RuntimeError(f"photo {number}: the lease did not hand over the photo just finished")
    await timed("receipt", lambda s: deliveries.delivered(s, leased, {"photo": "9"}, status_edited="8"))


async def one_round(photos: int, folder: Path, flow: Flow = "handoff") -> tuple[float, dict[str, list[float]]]:
    engine = create_engine(f"sqlite+aiosqlite:///{folder / 'bench.sqlite3'}")
    blobs = FileBlobStore(folder / "blobs")
    blobs.prepare()
    await upgrade_engine(engine, blobs=blobs)
    database = Database(session_factory(engine), blobs, retry_s=0)
    intake = Intake(database, Confirming(), busy_retry_after_s=5)  # type: ignore[arg-type]
    batcher = asyncio.create_task(intake.run())
    steps: dict[str, list[float]] = defaultdict(list)
    try:
        for number in range(20):  # warm-up: statement caches, the pool
            await one_photo(database, intake, number, defaultdict(list), flow)
        started = time.process_time()
        for number in range(photos):
            await one_photo(database, intake, 20 + number, steps, flow)
        spent = time.process_time() - started
    finally:
        batcher.cancel()
        await asyncio.gather(batcher, return_exceptions=True)
        await engine.dispose()
    return spent * 1000 / photos, steps


async def run(photos: int, rounds: int) -> dict[str, Any]:
    per_photo: dict[Flow, list[float]] = {flow: [] for flow in FLOWS}
    steps: dict[Flow, dict[str, list[float]]] = {flow: defaultdict(list) for flow in FLOWS}
    for _ in range(rounds):
        for flow in FLOWS:  # alternating, so that the box's drift falls on both
            with tempfile.TemporaryDirectory() as folder:
                cpu, found = await one_round(photos, Path(folder), flow)
            per_photo[flow].append(round(cpu, 3))
            for step, values in found.items():
                steps[flow][step].extend(values)
    return {
        flow: {
            "cpu_ms_per_photo": per_photo[flow],
            "median_cpu_ms_per_photo": statistics.median(per_photo[flow]),
            "step_wall_ms_p50": {
                step: round(statistics.median(values), 3) for step, values in steps[flow].items() if "(CPU)" not in step
            },
            "step_cpu_ms_mean": {  # the process's CPU (its threads too) while the step ran, alone
                step.removesuffix(" (CPU)"): round(statistics.fmean(values), 3)
                for step, values in steps[flow].items()
                if "(CPU)" in step
            },
        }
        for flow in FLOWS
    } | {"handoff_over_loop": round(statistics.median(per_photo["handoff"]) / statistics.median(per_photo["loop"]), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    info = machine()
    results = asyncio.run(run(args.photos, args.rounds))
    for flow in FLOWS:
        found = results[flow]
        print(f"{flow}: CPU ms per photo (median of {args.rounds} rounds): {found['median_cpu_ms_per_photo']}"
              f" {found['cpu_ms_per_photo']}")  # fmt: skip
    print(f"handoff / loop: {results['handoff_over_loop']}")
    handoff, loop = results["handoff"], results["loop"]
    rows = [[step, handoff["step_wall_ms_p50"].get(step, "-"), ms, handoff["step_cpu_ms_mean"].get(step, "-"),
             loop["step_cpu_ms_mean"][step]] for step, ms in loop["step_wall_ms_p50"].items()]  # fmt: skip
    print(table(["step", "handoff wall ms p50", "loop wall ms p50", "handoff CPU ms", "loop CPU ms"], rows))
    path = write_results("statements", {"machine": info, "photos": args.photos, "rounds": args.rounds, **results},
                         args.out)  # fmt: skip
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
