"""Operational statistics for /stats, read from the hourly rollups (``db.rollup``) plus a few indexed counts.

The cost does not grow with the number of jobs: the window is 24 hourly rows per counter, and the live
counts (waiting, dead) use the status index.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db import rollup
from db.models import ACTIVE, Job, JobStatus, StatsEvent, StatsLabel, StatsLatency, WorkerSeen

WINDOW_HOURS = 24
DEAD_CAP = 1000
METRICS = ("queue_wait", "processing", "end_to_end")


@dataclass
class Overview:
    since: float
    until: float
    events: dict[str, int] = field(default_factory=dict)  # received, done, failed, dead, delivered, cache_hit
    received_by_platform: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, int] = field(default_factory=dict)  # jobs right now in received / queued / processing
    latency: dict[str, dict[str, float | None]] = field(default_factory=dict)
    hourly: list[dict[str, Any]] = field(default_factory=list)
    top_labels: list[tuple[str, int]] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)
    dead_waiting: int = 0


async def overview(session: AsyncSession, *, now: float, hours: int = WINDOW_HOURS) -> Overview:
    last = rollup.hour_of(now)
    first = last - hours + 1
    result = Overview(since=first * 3600.0, until=now)
    rows = await session.execute(
        select(StatsEvent.platform, StatsEvent.event, func.sum(StatsEvent.n))
        .where(StatsEvent.hour >= first)
        .group_by(StatsEvent.platform, StatsEvent.event)
    )
    for platform, event, n in rows:
        result.events[event] = result.events.get(event, 0) + int(n)
        if event == "received":
            result.received_by_platform[platform] = int(n)
    histograms: dict[str, dict[int, int]] = defaultdict(dict)
    totals = await session.execute(
        select(StatsLatency.metric, StatsLatency.bucket, func.sum(StatsLatency.n))
        .where(StatsLatency.hour >= first)
        .group_by(StatsLatency.metric, StatsLatency.bucket)
    )
    for metric, bucket, n in totals:
        histograms[metric][bucket] = int(n)
    hourly_e2e: dict[int, dict[int, int]] = defaultdict(dict)
    per_hour_e2e = await session.execute(
        select(StatsLatency.hour, StatsLatency.bucket, StatsLatency.n).where(
            StatsLatency.hour >= first, StatsLatency.metric == "end_to_end"
        )
    )
    for hour, bucket, n in per_hour_e2e:
        hourly_e2e[hour][bucket] = n
    for metric in METRICS:
        histogram = histograms.get(metric, {})
        result.latency[metric] = {
            "p50": _rounded(rollup.percentile(histogram, 0.5)),
            "p95": _rounded(rollup.percentile(histogram, 0.95)),
            "count": sum(histogram.values()),
        }
    per_hour = await session.execute(
        select(StatsEvent.hour, func.sum(StatsEvent.n))
        .where(StatsEvent.hour >= first, StatsEvent.event == "received")
        .group_by(StatsEvent.hour)
    )
    received_per_hour = {int(hour): int(n) for hour, n in per_hour}
    result.hourly = [
        {
            "hour": index,
            "start": (first + index) * 3600.0,
            "jobs": int(received_per_hour.get(first + index, 0)),
            "p95_s": _rounded(rollup.percentile(hourly_e2e.get(first + index, {}), 0.95)),
        }
        for index in range(hours)
    ]
    labels = await session.execute(
        select(StatsLabel.label, func.sum(StatsLabel.n).label("total"))
        .where(StatsLabel.hour >= first)
        .group_by(StatsLabel.label)
        .order_by(func.sum(StatsLabel.n).desc(), StatsLabel.label)
        .limit(5)
    )
    result.top_labels = [(label, int(n)) for label, n in labels]
    waiting = await session.execute(select(Job.status, func.count()).where(Job.status.in_(ACTIVE)).group_by(Job.status))
    result.waiting = {str(status): int(n) for status, n in waiting}
    workers = await session.execute(
        select(WorkerSeen.name, WorkerSeen.model, WorkerSeen.last_seen_at)
        .where(WorkerSeen.last_seen_at >= now - 60)
        .order_by(WorkerSeen.name)
    )
    result.workers = [{"name": n, "model": m, "last_seen_at": at} for n, m, at in workers]
    # a capped count: "1000+" is all an operator needs, and it stays cheap however many there are
    dead = select(Job.id).where(Job.status == JobStatus.DEAD).limit(DEAD_CAP + 1).subquery()
    result.dead_waiting = int(await session.scalar(select(func.count()).select_from(dead)) or 0)
    return result


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
