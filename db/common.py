"""What the query modules share: the clock, transition outcomes, which platforms get deliveries, small helpers."""

from __future__ import annotations

import time
from enum import Enum
from typing import Any

from sqlalchemy import ColumnElement, case
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Job

CHAT_PLATFORMS = ("telegram", "discord")
"""Jobs from these platforms are delivered back to their chat by the gateway."""


def now() -> float:
    return time.time()


class Outcome(Enum):
    """What a guarded transition did."""

    APPLIED = "applied"  # the transition happened now
    REPEATED = "repeated"  # the job had already reached (or passed) that state: nothing changed
    NOT_FOUND = "not_found"
    GONE = "gone"  # finished (or purged) earlier: there is nothing left to do
    EXHAUSTED = "exhausted"  # too many attempts: the job was marked dead


def delivery_time(at: float | ColumnElement[float]) -> Any:
    """Chat jobs become due for delivery when they finish (``at``: a time, or a statement's parameter for one);
    HTTP clients fetch their own results."""
    return case((Job.platform.in_(CHAT_PLATFORMS), at), else_=None)


def dialect_insert(where: AsyncSession | str, model: Any) -> Any:
    """The database's own INSERT (SQLite's or Postgres's), which knows ``ON CONFLICT``; ``where``: a session on
    that database, or its dialect's name."""
    dialect = where if isinstance(where, str) else where.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


def rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def label_counts(detections: list[dict[str, Any]]) -> dict[str, int]:
    """How many of each label a result holds."""
    counts: dict[str, int] = {}
    for detection in detections:
        label = str(detection.get("label", "?"))
        counts[label] = counts.get(label, 0) + 1
    return counts
