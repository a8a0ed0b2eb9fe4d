"""Operational statistics straight from the job timestamps, in SQL that SQLite and Postgres both run.

Everything is bounded by an index range on ``received_at`` (or ``at`` / ``last_seen_at``), so the cost
follows the number of jobs in the window, not in the table. Percentiles are nearest-rank, from the ``cume_dist()``
window function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

WINDOW_S = 24 * 3600

METRICS = {
    "queue_wait": "processing_at - received_at",
    "processing": "done_at - processing_at",
    "end_to_end": "COALESCE(delivered_at, done_at) - received_at",
}
METRIC_FILTERS = {
    "queue_wait": "processing_at IS NOT NULL AND cache_hit = :false",
    "processing": "done_at IS NOT NULL AND processing_at IS NOT NULL AND cache_hit = :false",
    "end_to_end": "done_at IS NOT NULL",
}


@dataclass
class Overview:
    since: float
    until: float
    by_status: dict[str, int] = field(default_factory=dict)
    by_platform: dict[str, int] = field(default_factory=dict)
    latency: dict[str, dict[str, float | None]] = field(default_factory=dict)
    hourly: list[dict[str, Any]] = field(default_factory=list)
    top_labels: list[tuple[str, int]] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)
    cache_hits: int = 0
    dead_waiting: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


def _hour(dialect: str) -> str:
    """The hour bucket (0 = the window's first hour); floor on both databases."""
    expression = "(received_at - :since) / 3600"
    return f"FLOOR({expression})" if dialect == "postgresql" else f"CAST({expression} AS INTEGER)"


async def overview(session: AsyncSession, *, now: float, window_s: float = WINDOW_S) -> Overview:
    since = now - window_s
    result = Overview(since=since, until=now)
    params = {"since": since, "false": False}
    rows = await session.execute(
        text("SELECT platform, status, COUNT(*) FROM jobs WHERE received_at >= :since GROUP BY platform, status"),
        params,
    )
    for platform, status, count in rows:
        result.by_status[status] = result.by_status.get(status, 0) + count
        result.by_platform[platform] = result.by_platform.get(platform, 0) + count
    for name, expression in METRICS.items():
        result.latency[name] = await _percentiles(session, expression, METRIC_FILTERS[name], params)
    dialect = session.get_bind().dialect.name
    result.hourly = await _hourly(session, params, dialect, hours=int(window_s // 3600))
    labels = await session.execute(
        text(
            "SELECT label, SUM(count) AS n FROM job_labels WHERE at >= :since "
            "GROUP BY label ORDER BY n DESC, label LIMIT 5"
        ),
        params,
    )
    result.top_labels = [(label, int(n)) for label, n in labels]
    workers = await session.execute(
        text("SELECT name, model, last_seen_at FROM workers WHERE last_seen_at >= :recent ORDER BY name"),
        {"recent": now - 60},
    )
    result.workers = [{"name": n, "model": m, "last_seen_at": at} for n, m, at in workers]
    result.cache_hits = int(
        await session.scalar(
            text("SELECT COUNT(*) FROM jobs WHERE received_at >= :since AND cache_hit = :true"),
            {"since": since, "true": True},
        )
        or 0
    )
    result.dead_waiting = int(await session.scalar(text("SELECT COUNT(*) FROM jobs WHERE status = 'dead'")) or 0)
    return result


async def _percentiles(
    session: AsyncSession, expression: str, condition: str, params: dict[str, Any]
) -> dict[str, float | None]:
    row = (
        await session.execute(
            text(
                "SELECT MIN(CASE WHEN pr >= 0.5 THEN v END), MIN(CASE WHEN pr >= 0.95 THEN v END), COUNT(*) FROM ("
                " SELECT v, CUME_DIST() OVER (ORDER BY v) AS pr FROM ("
                f"  SELECT {expression} AS v FROM jobs WHERE received_at >= :since AND {condition}"
                " ) AS samples) AS ranked"
            ),
            params,
        )
    ).one()
    return {"p50": _rounded(row[0]), "p95": _rounded(row[1]), "count": int(row[2])}


async def _hourly(session: AsyncSession, params: dict[str, Any], dialect: str, *, hours: int) -> list[dict[str, Any]]:
    hour = _hour(dialect)
    counts = await session.execute(
        text(f"SELECT {hour} AS h, COUNT(*) FROM jobs WHERE received_at >= :since GROUP BY h"), params
    )
    p95 = await session.execute(
        text(
            "SELECT h, MIN(CASE WHEN pr >= 0.95 THEN v END) FROM ("
            " SELECT h, v, CUME_DIST() OVER (PARTITION BY h ORDER BY v) AS pr FROM ("
            f"  SELECT {hour} AS h, {METRICS['end_to_end']} AS v FROM jobs"
            "   WHERE received_at >= :since AND done_at IS NOT NULL"
            " ) AS samples) AS ranked GROUP BY h"
        ),
        params,
    )
    by_hour: dict[int, dict[str, Any]] = {h: {"hour": h, "jobs": 0, "p95_s": None} for h in range(hours)}
    for h, n in counts:
        if int(h) in by_hour:
            by_hour[int(h)]["jobs"] = int(n)
    for h, value in p95:
        if int(h) in by_hour:
            by_hour[int(h)]["p95_s"] = _rounded(value)
    return [by_hour[h] for h in range(hours)]


def _rounded(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)
