"""The /stats counters of the transitions: kept in memory once their transaction committed, written many at a time;
a transaction that rolled back counts nothing, and a failed write keeps them for the next."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db import rollup
from db.common import now
from db.models import StatsEvent, StatsLatency
from queue_gateway.database import Database
from tests.unit.doubles import sqlite_database


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    async for found in sqlite_database(tmp_path):
        yield found


async def events(database: Database) -> dict[str, int]:
    rows = await database.read(
        lambda s: s.execute(select(StatsEvent.event, func.sum(StatsEvent.n)).group_by(StatsEvent.event))
    )
    return {str(event): int(n) for event, n in rows}


async def test_counts_wait_for_the_flush_and_arrive_summed_in_one_write(database: Database) -> None:
    at = now()

    async def done(session: AsyncSession) -> None:
        await rollup.count_event(session, at, "telegram", "done")
        await rollup.observe(session, at, "end_to_end", 1.5)

    for _ in range(3):
        await database.write(done)
    assert await events(database) == {}  # nothing written in the photos' own transactions
    await database.flush_rollups()
    assert await events(database) == {"done": 3}
    latency = await database.read(lambda s: s.scalar(select(func.sum(StatsLatency.n))))
    assert latency == 3
    await database.flush_rollups()  # nothing new: nothing written twice
    assert await events(database) == {"done": 3}


async def test_a_rolled_back_transaction_counts_nothing(database: Database) -> None:
    async def fails(session: AsyncSession) -> None:
        await rollup.count_event(session, now(), "telegram", "failed")
        raise ValueError("this work is wrong")

    with pytest.raises(ValueError):
        await database.write(fails)
    await database.flush_rollups()
    assert await events(database) == {}


async def test_a_session_of_its_own_writes_at_once(database: Database) -> None:
    async with database.sessions.begin() as session:  # no tally: seeding, migrations, tools
        await rollup.count_event(session, now(), "http", "received", 2)
    assert await events(database) == {"received": 2}
