"""Hourly rollups for /stats: counters of the transitions, written as ``INSERT … ON CONFLICT … DO UPDATE`` (the
same SQL in SQLite ≥ 3.24 and Postgres).

A session may carry a :class:`Tally` (``session.info``): the counts of its transaction are then added to it
instead of written at once, and its owner writes them later, many transactions' worth in one (:func:`write`) —
six statements fewer in each photo's transactions. A transaction that rolls back takes its counts with it.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

TALLY = "detectbot.rollup_tally"

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


@dataclass
class Tally:
    """Rollup counts not written yet, by row."""

    events: Counter[tuple[int, str, str]] = field(default_factory=Counter)
    latency: Counter[tuple[int, str, int]] = field(default_factory=Counter)
    labels: Counter[tuple[int, str]] = field(default_factory=Counter)

    def __bool__(self) -> bool:
        return bool(self.events or self.latency or self.labels)

    def add(self, other: Tally) -> None:
        self.events.update(other.events)
        self.latency.update(other.latency)
        self.labels.update(other.labels)

    def take(self) -> Tally:
        """These counts, handed over; this tally is empty after."""
        taken = Tally(self.events, self.latency, self.labels)
        self.events, self.latency, self.labels = Counter(), Counter(), Counter()
        return taken


async def write(session: AsyncSession, tally: Tally) -> None:
    """Write a tally's counts: one statement per table."""
    if tally.events:
        await session.execute(_EVENT, [{"hour": h, "platform": p, "event": e, "n": n}
                                       for (h, p, e), n in tally.events.items()])  # fmt: skip
    if tally.latency:
        await session.execute(_LATENCY, [{"hour": h, "metric": m, "bucket": b, "n": n}
                                         for (h, m, b), n in tally.latency.items()])  # fmt: skip
    if tally.labels:
        await session.execute(_LABEL, [{"hour": h, "label": label, "n": n} for (h, label), n in tally.labels.items()])


def _tally(session: AsyncSession) -> Tally | None:
    found = session.info.get(TALLY)
    return found if isinstance(found, Tally) else None


async def count_event(session: AsyncSession, at: float, platform: str, event: str, n: int = 1) -> None:
    if (tally := _tally(session)) is not None:
        tally.events[(hour_of(at), platform, event)] += n
        return
    await session.execute(_EVENT, {"hour": hour_of(at), "platform": platform, "event": event, "n": n})


async def observe(session: AsyncSession, at: float, metric: str, seconds: float | None) -> None:
    await observe_many(session, at, {metric: seconds})


async def observe_many(session: AsyncSession, at: float, spans: dict[str, float | None]) -> None:
    """Several latencies of one moment, in one statement."""
    found = [(hour_of(at), metric, bucket_of(seconds)) for metric, seconds in spans.items()
             if seconds is not None and seconds >= 0]  # fmt: skip
    if (tally := _tally(session)) is not None:
        tally.latency.update(found)
        return
    rows = [{"hour": hour, "metric": metric, "bucket": bucket, "n": 1} for hour, metric, bucket in found]
    if rows:
        await session.execute(_LATENCY, rows)


async def count_labels(session: AsyncSession, at: float, labels: dict[str, int]) -> None:
    if (tally := _tally(session)) is not None:
        tally.labels.update({(hour_of(at), label[:100]): n for label, n in labels.items()})
        return
    rows = [{"hour": hour_of(at), "label": label[:100], "n": n} for label, n in labels.items()]
    if rows:
        await session.execute(_LABEL, rows)
