"""The outbox relay on SQLite with a publisher double: what a crash or an outage left unpublished goes out, held
photos go out as their sender's earlier ones move on, and a job that waited long gets new worker links."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from db import jobs, transitions
from db.common import now
from db.models import Job
from queue_gateway.database import Database
from queue_gateway.publisher import BrokerUnavailable
from queue_gateway.relay import OutboxRelay
from tests.unit.doubles import FakePublisher, add_jobs, new_job, sqlite_database


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    async for found in sqlite_database(tmp_path):
        yield found


def relay_for(database: Database, publisher: FakePublisher, **options: float) -> OutboxRelay:
    return OutboxRelay(database, publisher, interval_s=1.0, grace_s=5.0, fair_share=lambda _user: 1, **options)  # type: ignore[arg-type]


async def store(database: Database, *made: jobs.NewJob, at: float) -> None:
    async with database.sessions.begin() as session:
        await add_jobs(session, database, list(made), at=at)


async def test_what_a_crash_left_unpublished_goes_out_after_the_grace(database: Database) -> None:
    publisher = FakePublisher()
    old, fresh = new_job(user="1"), new_job(user="2")
    await store(database, old, at=now() - 60)
    await store(database, fresh, at=now())
    assert await relay_for(database, publisher).relay_once() == 1
    assert publisher.published == [(old.id, 0)]  # the fresh one may still be in its batcher's hands
    assert await relay_for(database, publisher).relay_once(grace_s=0.0) == 1  # told it failed: at once


async def test_a_broker_away_publishes_nothing_and_loses_nothing(database: Database) -> None:
    await store(database, new_job(), at=now() - 60)
    assert await relay_for(database, FakePublisher(refuse=BrokerUnavailable)).relay_once() == 0
    publisher = FakePublisher()
    assert await relay_for(database, publisher).relay_once() == 1 and len(publisher.published) == 1


async def test_held_photos_go_out_one_at_a_time_as_the_earlier_move_on(database: Database) -> None:
    publisher = FakePublisher()
    first, second = new_job(user="1"), new_job(user="1")
    second.held = True
    await store(database, first, at=now() - 60)
    await database.write(lambda s: _queued(s, first.id))
    await store(database, second, at=now())
    assert await relay_for(database, publisher).relay_once() == 0  # the sender's share of the queue is taken
    await database.write(lambda s: transitions.start_attempt(s, first.id, worker="w", max_attempts=3))
    assert await relay_for(database, publisher).relay_once() == 1 and publisher.published == [(second.id, 0)]


async def test_a_job_waiting_half_its_links_lifetime_is_sent_again_with_new_ones(database: Database) -> None:
    publisher = FakePublisher()
    waiting = new_job()
    await store(database, waiting, at=now() - 7200)
    await database.write(lambda s: _queued(s, waiting.id, at=now() - 3600))
    assert await relay_for(database, publisher, link_ttl_s=3600).relay_once() == 1
    assert publisher.published == [(waiting.id, 1)]  # a new generation: the old message's links find nothing
    async with database.sessions() as session:
        row = await session.get(Job, waiting.id)
    assert row is not None and (row.status, row.link_gen) == ("queued", 1)


async def _queued(session: object, job_id: str, *, at: float | None = None) -> None:
    from sqlalchemy import update

    await session.execute(  # type: ignore[attr-defined]
        update(Job).where(Job.id == job_id).values(status="queued", queued_at=at or now(), held=False)
    )


async def test_a_job_intake_is_still_publishing_is_not_published_twice(database: Database) -> None:
    """A slow confirm, or an urgent pass after another job's publish failed: what intake has in flight is its own."""
    publisher = FakePublisher()
    slow, left = new_job(user="1"), new_job(user="2")
    await store(database, slow, left, at=now() - 60)
    relay = OutboxRelay(database, publisher, interval_s=1.0, grace_s=5.0, publishing={slow.id})  # type: ignore[arg-type]
    assert await relay.relay_once(grace_s=0.0) == 1
    assert publisher.published == [(left.id, 0)]
