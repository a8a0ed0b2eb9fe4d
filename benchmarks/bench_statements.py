"""A photo's life in the database alone, step by step as the gateway runs it: CPU per photo on SQLite.

    python -m benchmarks.bench_statements [--photos 400] [--rounds 3]

Each photo, through ``queue_gateway.database.Database`` on an engine made as the gateway makes one (the one-hop
SQLite driver, WAL, synchronous=FULL): intake's INSERT, the publish confirm, the bot's status message, the
worker's start, its result (the annotated image's blob rows), the delivery's lease, the result's digest and the
receipt, each step its own transaction. Measured: this process's CPU (event loop, greenlets and the SQLite thread)
per photo, and the wall time of each step. No broker, no HTTP: what the database layer itself costs the gateway.
Writes benchmarks/results/statements.json.
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
from typing import Any

from benchmarks.support import machine, table, write_results
from db import deliveries, jobs, outbox, transitions
from db.blobstore import FileBlobStore, StoredBlob
from db.engine import create_engine, session_factory
from db.migrate import upgrade_engine
from queue_gateway.database import Database

PHOTO = b"\xff\xd8" + bytes(range(256)) * 400 + b"\xff\xd9"  # the bytes only go to the blob store
BOXES = [{"class_id": 0, "label": "person", "confidence": 0.9, "box": [1.0, 2.0, 3.0, 4.0]}] * 4


def new_job(number: int) -> jobs.NewJob:
    chat = str(number % 50)
    return jobs.NewJob(
        id=uuid.uuid4().hex, platform="telegram", image=PHOTO, image_sha256=uuid.uuid4().hex, image_format="JPEG",
        content_type="image/jpeg", width=1280, height=960, user_ref=f"telegram:{chat}",
        origin={"platform": "telegram", "chat_id": chat, "user_id": chat, "message_id": "7"},
    )  # fmt: skip


async def one_photo(database: Database, number: int, steps: dict[str, list[float]]) -> None:
    new = new_job(number)
    new.digest = await database.blobs.put(PHOTO + number.to_bytes(4, "big"))
    result_bytes = PHOTO[::-1] + number.to_bytes(4, "big")
    result = StoredBlob(await database.blobs.put(result_bytes), result_bytes, "image/jpeg")

    async def timed(step: str, work: Any, *, read: bool = False) -> Any:
        started = time.perf_counter()
        value = await (database.read(work) if read else database.write(work))
        steps[step].append((time.perf_counter() - started) * 1000)
        return value

    await timed("intake", lambda s: jobs.add_jobs(s, database.blobs, [new]))
    await timed("publish confirm", lambda s: outbox.mark_published(s, [new.id]))
    await timed("status message", lambda s: deliveries.set_status_message(s, new.id, "8"))
    await timed("worker start", lambda s: transitions.start_attempt(s, new.id, worker="w", max_attempts=3))
    await timed(
        "result",
        lambda s: transitions.complete(
            s, database.blobs, new.id, detections=BOXES, model="m", worker="w", inference_ms=20.0, image=result
        ),
    )
    leased = await timed("lease", lambda s: deliveries.lease_due(s, owner="bench", seconds=30, limit=16))
    if [job.id for job in leased] != [new.id]:
        raise RuntimeError(f"photo {number}: the lease did not hand over the photo just finished")
    await timed("result digest", lambda s: deliveries.result_digests(s, [job.id for job in leased]), read=True)
    await timed("receipt", lambda s: deliveries.delivered(s, leased, {"photo": "9"}, status_edited="8"))


async def one_round(photos: int, folder: Path) -> tuple[float, dict[str, list[float]]]:
    engine = create_engine(f"sqlite+aiosqlite:///{folder / 'bench.sqlite3'}")
    blobs = FileBlobStore(folder / "blobs")
    blobs.prepare()
    await upgrade_engine(engine, blobs=blobs)
    database = Database(session_factory(engine), blobs, retry_s=0)
    steps: dict[str, list[float]] = defaultdict(list)
    try:
        for number in range(20):  # warm-up: statement caches, the pool
            await one_photo(database, number, defaultdict(list))
        started = time.process_time()
        for number in range(photos):
            await one_photo(database, number, steps)
        spent = time.process_time() - started
    finally:
        await engine.dispose()
    return spent * 1000 / photos, steps


async def run(photos: int, rounds: int) -> dict[str, Any]:
    per_photo: list[float] = []
    steps: dict[str, list[float]] = defaultdict(list)
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as folder:
            cpu, found = await one_round(photos, Path(folder))
        per_photo.append(round(cpu, 3))
        for step, values in found.items():
            steps[step].extend(values)
    return {
        "cpu_ms_per_photo": per_photo,
        "median_cpu_ms_per_photo": statistics.median(per_photo),
        "step_wall_ms_p50": {step: round(statistics.median(values), 3) for step, values in steps.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    info = machine()
    results = asyncio.run(run(args.photos, args.rounds))
    print(f"CPU ms per photo (median of {args.rounds} rounds): {results['median_cpu_ms_per_photo']}"
          f" {results['cpu_ms_per_photo']}")  # fmt: skip
    print(table(["step", "wall ms p50"], [[step, ms] for step, ms in results["step_wall_ms_p50"].items()]))
    path = write_results("statements", {"machine": info, "photos": args.photos, "rounds": args.rounds, **results},
                         args.out)  # fmt: skip
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
