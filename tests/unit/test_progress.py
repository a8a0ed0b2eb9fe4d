"""The progress updater on SQLite with a notifier double and a hand-moved clock: a waiting photo's status message
shows its place, moves when the line does (not on every tiny move), never faster than a chat allows, and says
"Working on it…" only for a photo a worker has held a while."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from db import deliveries, transitions
from db.common import now
from db.models import Job
from queue_gateway.database import Database
from queue_gateway.notify.base import ChatClock
from queue_gateway.notify.progress import GROUP_INTERVAL_S, ProgressUpdater
from queue_gateway.pace import Pace
from queue_gateway.public import texts
from tests.unit.doubles import FakeNotifier, ManualClock, add_jobs, new_job, sqlite_database


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    async for found in sqlite_database(tmp_path):
        yield found


async def in_line(database: Database, count: int, *, chat: str = "42") -> list[str]:
    """``count`` photos in line in ``chat`` (each a different person), each with its "queued" message named."""
    made = [new_job(chat=chat, user=str(100 + n)) for n in range(count)]
    async with database.sessions.begin() as session:
        for n, job in enumerate(made):  # one after another: this is their order in line
            await add_jobs(session, database, [job], at=now() - 60 + n)
            await deliveries.set_status_message(session, job.id, f"s{n}")
    return [job.id for job in made]


def updater(database: Database, notifier: FakeNotifier, clock: ManualClock) -> ProgressUpdater:
    notifier.clock = ChatClock(clock)  # one clock for the chat's pace, as delivery and progress share it
    return ProgressUpdater(database, {"telegram": notifier}, Pace(), clock=clock, chat_interval_s=1.0)


async def test_the_bots_own_first_answer_stands_then_moves_up_the_line(database: Database) -> None:
    notifier, clock = FakeNotifier(), ManualClock()
    ids = await in_line(database, 6, chat="-100777")  # a group: one chat for all
    progress = updater(database, notifier, clock)
    assert await progress.update_once() == 0  # the bot itself showed each place when it took the photo
    for job_id in ids[:3]:  # three photos leave the line
        await database.write(lambda s, job_id=job_id: transitions.start_attempt(s, job_id, worker="w", max_attempts=3))
    clock.advance(GROUP_INTERVAL_S + 0.1)
    assert await progress.update_once() == 1  # one edit per pass in a chat: the pace a group allows
    [shown] = notifier.updates
    assert shown.status_message_id == "s3" and shown.text == texts.queued_text(1, Pace().eta_s(1), None)
    assert shown.cancel_job_id == ids[3]  # while it waits, Cancel stays
    assert await progress.update_once() == 0  # too soon for the same chat
    clock.advance(GROUP_INTERVAL_S + 0.1)
    assert await progress.update_once() == 1


async def test_a_photo_in_a_worker_says_working_on_it_only_after_a_while(database: Database) -> None:
    notifier, clock = FakeNotifier(), ManualClock()
    [job_id] = await in_line(database, 1)
    await database.write(lambda s: transitions.start_attempt(s, job_id, worker="w", max_attempts=3))
    progress = updater(database, notifier, clock)
    assert await progress.update_once() == 0 and notifier.activities == ["telegram:42"]  # "sending photo…" at once
    async with database.sessions.begin() as session:  # the worker has had it for a while
        held = await session.get(Job, job_id)
        assert held is not None
        held.processing_at = now() - 5
    clock.advance(3)
    assert await progress.update_once() == 1
    [shown] = notifier.updates
    assert shown.text == texts.text("processing") and shown.cancel_job_id is None
