"""The delivery loop's schedule: what is due, and when it next wakes, straight from the database."""

from __future__ import annotations

import time

from sqlalchemy import insert

from db import deliveries, migrate
from db.engine import create_engine, session_factory
from db.models import Job
from tests.seed import Seeded, job_row


async def test_a_delivery_in_hand_is_not_due_again_until_its_lease_ends(database_url: str) -> None:
    await migrate.upgrade(database_url)
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    try:
        at = time.time()
        row = job_row(Seeded("telegram", "done", at - 5, 1.0, 1.0))
        row["next_delivery_at"] = at - 1  # due a second ago
        async with sessions.begin() as session:
            await session.execute(insert(Job), [row])
            assert await deliveries.next_delivery_time(session) == row["next_delivery_at"]
        async with sessions.begin() as session:
            leased = await deliveries.lease_due(session, owner="gw-test", seconds=15.0, limit=8)
        assert [job.id for job in leased] == [row["id"]]
        async with sessions.begin() as session:
            due = await deliveries.next_delivery_time(session)
            assert due is not None and due >= at + 14, "a delivery in hand made the loop's next wake-up 'now'"
            assert await deliveries.lease_due(session, owner="gw-other", seconds=15.0, limit=8) == []
    finally:
        await engine.dispose()
