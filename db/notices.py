"""What the system tells its admins once, whichever gateway replica notices first: workers gone, workers back.

A notice is one row. The replica whose guarded UPDATE claims it (``told_at`` from NULL) is the one that tells;
the one that clears it (back to NULL) tells that it is over. Replicas that lose either race say nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.common import dialect_insert, rowcount
from db.models import Notice

NO_WORKERS = "no_workers"


@dataclass(frozen=True, slots=True)
class Told:
    """A notice that had been told: since when it held, and how many photos waited then."""

    since: float
    waiting: int


async def claim(session: AsyncSession, name: str, *, since: float, waiting: int, at: float) -> bool:
    """Mark the notice told now; True for the one caller that did (the others find it told already)."""
    await session.execute(dialect_insert(session, Notice).values(name=name, waiting=0).on_conflict_do_nothing())
    claimed = await session.execute(
        update(Notice)
        .execution_options(synchronize_session=False)
        .where(Notice.name == name, Notice.told_at.is_(None))
        .values(since=since, told_at=at, waiting=waiting)
    )
    return rowcount(claimed) == 1


async def clear(session: AsyncSession, name: str) -> Told | None:
    """The notice no longer holds: clear it; what had been told, for the one caller that cleared it."""
    row = (
        await session.execute(select(Notice.since, Notice.waiting, Notice.told_at).where(Notice.name == name))
    ).first()
    if row is None or row[2] is None:
        return None
    cleared = await session.execute(
        update(Notice)
        .execution_options(synchronize_session=False)
        .where(Notice.name == name, Notice.told_at == row[2])  # compare and set: one replica clears it
        .values(since=None, told_at=None, waiting=0)
    )
    return Told(float(row[0] or 0.0), int(row[1] or 0)) if rowcount(cleared) == 1 else None


async def told(session: AsyncSession, name: str) -> Told | None:
    """The notice, if it has been told and still holds."""
    row = (
        await session.execute(select(Notice.since, Notice.waiting, Notice.told_at).where(Notice.name == name))
    ).first()
    if row is None or row[2] is None:
        return None
    return Told(float(row[0] or 0.0), int(row[1] or 0))
