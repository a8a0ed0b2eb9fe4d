"""Seed jobs with known timestamps straight into the database (the stats tests and benchmark use it)."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db import rollup
from db.models import Job


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
    """Insert the job rows, and record their history in the rollups as the real transitions would."""
    await session.execute(insert(Job), [job_row(seed) for seed in seeds])
    for seed in seeds:
        await record_history(session, seed)


async def record_history(session: AsyncSession, seed: Seeded) -> None:
    await rollup.count_event(session, seed.received_at, seed.platform, "received")
    chat = seed.platform in ("telegram", "discord")
    if seed.done_at is not None:
        done = seed.done_at
        await rollup.count_event(session, done, seed.platform, "done")
        if seed.cache_hit:
            await rollup.count_event(session, done, seed.platform, "cache_hit")
        else:
            await rollup.observe(session, done, "queue_wait", seed.wait_s)
            await rollup.observe(session, done, "processing", seed.work_s)
        if not chat:
            await rollup.observe(session, done, "end_to_end", done - seed.received_at)
        counts: dict[str, int] = {}
        for label in seed.labels:
            counts[label] = counts.get(label, 0) + 1
        await rollup.count_labels(session, done, counts)
    if seed.delivered_at is not None:
        await rollup.count_event(session, seed.delivered_at, seed.platform, "delivered")
        await rollup.observe(session, seed.delivered_at, "end_to_end", seed.delivered_at - seed.received_at)
    if seed.status in ("failed", "dead"):
        await rollup.count_event(session, seed.received_at + 1, seed.platform, seed.status)


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]
