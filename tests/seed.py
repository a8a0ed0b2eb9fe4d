"""Seed jobs with known timestamps straight into the database (the stats tests and benchmark use it)."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Job, JobLabel


@dataclass
class Seeded:
    platform: str
    status: str
    received_at: float
    wait_s: float | None = None  # received → processing
    work_s: float | None = None  # processing → done
    deliver_s: float | None = None  # done → delivered
    labels: tuple[str, ...] = ()
    cache_hit: bool = False

    @property
    def processing_at(self) -> float | None:
        return None if self.wait_s is None else self.received_at + self.wait_s

    @property
    def done_at(self) -> float | None:
        p = self.processing_at
        return None if p is None or self.work_s is None else p + self.work_s

    @property
    def delivered_at(self) -> float | None:
        d = self.done_at
        return None if d is None or self.deliver_s is None else d + self.deliver_s


def job_row(seed: Seeded) -> dict[str, Any]:
    failed = seed.received_at + 1 if seed.status == "failed" else None
    dead = seed.received_at + 1 if seed.status == "dead" else None
    return {
        "id": uuid.uuid4().hex,
        "status": seed.status,
        "platform": seed.platform,
        "idempotency_key": None,
        "user_ref": None,
        "origin": None,
        "params": {},
        "group_key": None,
        "group_size": 1,
        "group_index": 0,
        "image_sha256": "0" * 64,
        "image_format": "JPEG",
        "width": 1,
        "height": 1,
        "attempts": 1,
        "error_code": "x" if (failed or dead) else None,
        "error": "seeded failure" if (failed or dead) else None,
        "detections": [{"label": label} for label in seed.labels] if seed.done_at else None,
        "model": "seed",
        "worker": "seed",
        "inference_ms": 1.0,
        "cache_hit": seed.cache_hit,
        "received_at": seed.received_at,
        "queued_at": seed.received_at,
        "processing_at": seed.processing_at,
        "done_at": seed.done_at,
        "failed_at": failed,
        "dead_at": dead,
        "delivered_at": seed.delivered_at,
        "purged_at": None,
        "delivery_attempts": 0,
        "next_delivery_at": None,
        "delivery_lease_until": None,
        "delivery_receipt": None,
        "delivery_error": None,
    }


async def seed_jobs(session: AsyncSession, seeds: list[Seeded]) -> None:
    rows = [job_row(seed) for seed in seeds]
    await session.execute(insert(Job), rows)
    labels = []
    for row, seed in zip(rows, seeds, strict=True):
        counts: dict[str, int] = {}
        for label in seed.labels:
            counts[label] = counts.get(label, 0) + 1
        labels += [{"job_id": row["id"], "label": k, "count": v, "at": row["done_at"]} for k, v in counts.items()]
    if labels:
        await session.execute(insert(JobLabel), labels)


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]
