"""/history and re-runs without the chats: what a re-run asks for, which re-runs a photo offers, the lines, and the
two steps of retention (the photo goes first; what was found stays in the sender's history, then nothing names them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from db import jobs, operations
from db.common import now
from db.models import Job, JobStatus
from queue_gateway import words
from queue_gateway.database import Database
from queue_gateway.history_api import rerun_params, reruns_of
from queue_gateway.public import texts
from tests.unit.doubles import finished, new_job, sqlite_database

DAY = 86400


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    async for found in sqlite_database(tmp_path):
        yield found


def job(**values: object) -> Job:
    row = Job(id="j1", platform="telegram", status=JobStatus.DONE, params={}, received_at=now() - 7200,
              detections=[{"label": "person"}, {"label": "person"}, {"label": "dog"}])  # fmt: skip
    for name, value in {"purged_at": None, "rerun_of": None, "rerun_mode": None, "conf_used": 0.35, **values}.items():
        setattr(row, name, value)
    return row


def test_a_rerun_changes_only_what_its_mode_says() -> None:
    assert rerun_params(job(), "lower") == {"conf": 0.17}  # half the threshold the worker applied
    assert rerun_params(job(params={"conf": 0.6, "language": "ru"}), "lower") == {"conf": 0.3, "language": "ru"}
    assert rerun_params(job(params={"conf": 0.6}), "higher") == {"conf": 0.8}
    assert rerun_params(job(params={"conf": 0.04}), "lower") == {"conf": 0.05}  # never below the floor
    assert rerun_params(job(params={"conf": 0.5, "classes": ["cat"]}), "found") == {
        "conf": 0.5,
        "classes": ["dog", "person"],
    }
    assert rerun_params(job(params={"conf": 0.5, "language": "ru"}), "settings") == {"language": "ru"}


def test_which_reruns_a_photo_offers() -> None:
    assert reruns_of(job()) == ["lower", "higher", "found", "settings"]
    assert reruns_of(job(detections=[])) == ["lower", "higher", "settings"]
    assert reruns_of(job(platform="http")) == ["lower", "higher", "found"]
    assert reruns_of(job(status=JobStatus.QUEUED)) == [] and reruns_of(job(purged_at=now())) == []


def test_history_lines_say_when_what_and_whether_the_photo_is_gone() -> None:
    at = now()
    line = words.history_line(job(received_at=at - 7200), 2, at, None)
    assert line == texts.text("history_line", number=2, age="2 h", what="2 persons, 1 dog")
    gone = words.history_line(job(purged_at=at, received_at=at - 9 * DAY, rerun_of="j0"), 1, at, "ru")
    assert gone.endswith(texts.text("history_gone", "ru", what=texts.text("history_rerun", "ru", what="")).strip())
    assert words.age(59, None) == "1 min" and words.age(3 * DAY, "ru") == "3 дня"
    assert words.history([], "ru") == texts.text("history_empty", "ru")


async def test_retention_takes_the_photo_first_and_the_names_later(database: Database) -> None:
    here, elsewhere = new_job(chat="42", user="7"), new_job(chat="43", user="7")
    for new in (here, elsewhere):
        await finished(database, new)
    assert [j.id for j in await database.read(lambda s: jobs.history(s, "telegram", "7", "42", limit=10))] == [here.id]

    async def expire(days_ago_photo: float, days_ago_names: float) -> int:
        at = now()
        return await database.write(
            lambda s: operations.expire(
                s, older_than=at - days_ago_photo * DAY, names_older_than=at - days_ago_names * DAY
            )
        )

    async def age(days: float) -> None:
        async with database.sessions.begin() as session:
            for new in (here, elsewhere):
                row = await session.get(Job, new.id)
                assert row is not None
                row.received_at = now() - days * DAY

    await age(8)
    assert await expire(7, 30) == 2  # the photos go …
    (listed,) = await database.read(lambda s: jobs.history(s, "telegram", "7", "42", limit=10))
    assert listed.purged_at is not None and listed.detections and reruns_of(listed) == []  # … /history still lists it
    assert await expire(7, 30) == 0
    await age(31)
    assert await expire(7, 30) == 2  # then nothing names the sender or the chat
    assert await database.read(lambda s: jobs.history(s, "telegram", "7", "42", limit=10)) == []
