"""A worker's fetch starts its attempt and finds the input photo in one statement; a repeat, a requeue's old link
and an exhausted job answer as before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import delete

from db import transitions
from db.common import Outcome
from db.models import Blob
from queue_gateway.database import Database
from tests.unit.doubles import add_jobs, new_job, sqlite_database


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    async for found in sqlite_database(tmp_path):
        yield found


async def test_a_fetch_starts_the_attempt_and_names_the_input_and_a_repeat_names_it_again(database: Database) -> None:
    job = new_job()
    async with database.sessions.begin() as session:
        await add_jobs(session, database, [job])
        stored = await session.get(Blob, (job.id, "input"))
        assert stored is not None
    first = await database.write(lambda s: transitions.start_fetch(s, job.id, worker="w", max_attempts=3, delivery=1))
    again = await database.write(lambda s: transitions.start_fetch(s, job.id, worker="w", max_attempts=3, delivery=1))
    expected = transitions.Input(stored.digest, stored.content_type)
    assert first == (Outcome.APPLIED, expected) and again == (Outcome.REPEATED, expected)
    older = await database.write(lambda s: transitions.start_fetch(s, job.id, worker="w", max_attempts=3, link_gen=7))
    assert older == (Outcome.GONE, None)  # a link from another generation has nothing to fetch


async def test_a_fetch_of_a_job_whose_photo_file_is_gone_names_no_input(database: Database) -> None:
    job = new_job()
    async with database.sessions.begin() as session:
        await add_jobs(session, database, [job])
        await session.execute(delete(Blob).where(Blob.job_id == job.id))
    started = await database.write(lambda s: transitions.start_fetch(s, job.id, worker="w", max_attempts=3))
    assert started == (Outcome.APPLIED, None)
    missing = await database.write(lambda s: transitions.start_fetch(s, "no-such-job", worker="w", max_attempts=3))
    assert missing == (Outcome.NOT_FOUND, None)
