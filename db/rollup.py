"""Hourly rollups for /stats, bumped inside the transactions whose transitions they count.

``INSERT … ON CONFLICT … DO UPDATE`` is the same SQL in SQLite (≥ 3.24) and Postgres.
"""

from __future__ import annotations

import math

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

BUCKET_BASE_S = 0.001  # bucket 0 holds everything up to 1 ms
BUCKET_RATIO = 1.02  # each bucket is 2 % wider than the last: 1 ms … 1 day in ~575 buckets
_LOG_RATIO = math.log(BUCKET_RATIO)


def hour_of(at: float) -> int:
    return int(at // 3600)


def bucket_of(seconds: float) -> int:
    if seconds <= BUCKET_BASE_S:
        return 0
    return 1 + int(math.log(seconds / BUCKET_BASE_S) / _LOG_RATIO)


def bucket_value(bucket: int) -> float:
    """A representative value for a bucket: the geometric middle of its range."""
    if bucket <= 0:
        return BUCKET_BASE_S
    low = BUCKET_BASE_S * BUCKET_RATIO ** (bucket - 1)
    return low * math.sqrt(BUCKET_RATIO)


def percentile(histogram: dict[int, int], q: float) -> float | None:
    """Nearest-rank percentile of a bucket histogram."""
    total = sum(histogram.values())
    if not total:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return bucket_value(bucket)
    return None  # pragma: no cover - unreachable: seen reaches total


_EVENT = text(
    "INSERT INTO stats_events (hour, platform, event, n) VALUES (:hour, :platform, :event, :n) "
    "ON CONFLICT (hour, platform, event) DO UPDATE SET n = stats_events.n + excluded.n"
)
_LATENCY = text(
    "INSERT INTO stats_latency (hour, metric, bucket, n) VALUES (:hour, :metric, :bucket, :n) "
    "ON CONFLICT (hour, metric, bucket) DO UPDATE SET n = stats_latency.n + excluded.n"
)
_LABEL = text(
    "INSERT INTO stats_labels (hour, label, n) VALUES (:hour, :label, :n) "
    "ON CONFLICT (hour, label) DO UPDATE SET n = stats_labels.n + excluded.n"
)


async def count_event(session: AsyncSession, at: float, platform: str, event: str, n: int = 1) -> None:
    await session.execute(_EVENT, {"hour": hour_of(at), "platform": platform, "event": event, "n": n})


async def observe(session: AsyncSession, at: float, metric: str, seconds: float | None) -> None:
    await observe_many(session, at, {metric: seconds})


async def observe_many(session: AsyncSession, at: float, spans: dict[str, float | None]) -> None:
    """Several latencies of one moment, in one statement."""
    rows = [
        {"hour": hour_of(at), "metric": metric, "bucket": bucket_of(seconds), "n": 1}
        for metric, seconds in spans.items()
        if seconds is not None and seconds >= 0
    ]
    if rows:
        await session.execute(_LATENCY, rows)


async def count_labels(session: AsyncSession, at: float, labels: dict[str, int]) -> None:
    rows = [{"hour": hour_of(at), "label": label[:100], "n": n} for label, n in labels.items()]
    if rows:
        await session.execute(_LABEL, rows)
