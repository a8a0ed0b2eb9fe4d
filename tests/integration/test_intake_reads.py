"""What intake reads before it writes a batch, straight from the database, on SQLite and on Postgres."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import jobs, migrate
from db.engine import create_engine, session_factory
from db.models import Blob, BlobFile, Job
from tests.seed import Seeded, job_row


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    await migrate.upgrade(database_url)
    engine = create_engine(database_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


def row(status: str, received_at: float, **values: Any) -> dict[str, Any]:
    seed = (
        Seeded("telegram", status, received_at, 0.5, 0.5)
        if status == "done"
        else Seeded("telegram", status, received_at)
    )
    return job_row(seed) | values


async def test_one_read_finds_the_repeats_the_senders_lines_and_the_place_in_line(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    at = time.time()
    held = row("queued", at - 10, idempotency_key="telegram:1:7", user_ref="telegram:1")
    album = [row("processing", at - 20, user_ref="telegram:1", group_key="g", group_index=i) for i in (0, 1)]
    rows = [
        held,
        *album,
        row("done", at - 30, user_ref="telegram:1"),  # sent in the last minute, no longer in line
        row("done", at - 7200, user_ref="telegram:1"),  # neither
        row("received", at - 5, user_ref="telegram:3"),  # someone else's, waiting: ahead of the batch
        row("queued", at + 1, user_ref="telegram:3"),  # arrived after the batch began: not ahead of it
    ]
    async with sessions.begin() as session:
        await session.execute(insert(Job), rows)
    async with sessions() as session:
        seen = await jobs.before_intake(session, ["telegram:1:7", "telegram:9:9"], ["telegram:1", "telegram:2"], at=at)
        assert seen.ahead == await jobs.waiting_before(session, at) == 2
        assert seen.last_minute == await jobs.received_since(session, ["telegram:1", "telegram:2"], at - 60)
    assert seen.holders == {"telegram:1:7": jobs.Holder(held["id"], "queued", at - 10)}
    assert seen.in_line == {
        "telegram:1": jobs.InLine(submissions=2, groups={"g"}, queued=1),  # the album counts once
        "telegram:2": jobs.InLine(),
    }
    assert seen.last_minute == {"telegram:1": 4}


async def test_nothing_to_look_up_still_gives_the_place_in_line(sessions: async_sessionmaker[AsyncSession]) -> None:
    at = time.time()
    async with sessions.begin() as session:
        await session.execute(insert(Job), [row("queued", at - 1), row("processing", at - 2)])
    async with sessions() as session:
        seen = await jobs.before_intake(session, [], [], at=at)
    assert (seen.holders, seen.in_line, seen.last_minute, seen.ahead) == ({}, {}, {}, 1)


async def test_the_cache_finds_a_senders_own_photo_behind_newer_copies_from_others(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    at = time.time()
    photo = "ab" * 32
    own = row("done", at - 600, user_ref="telegram:1", image_sha256=photo)
    others = [row("done", at - 60 + i, user_ref=f"telegram:{10 + i}", image_sha256=photo) for i in range(6)]
    by_client = row("done", at - 500, owner="key:abc", image_sha256=photo)
    found = [own, *others, by_client]
    async with sessions.begin() as session:
        await session.execute(insert(Job), found)
        await session.execute(insert(BlobFile), [{"digest": "cd" * 32, "touched_at": at}])
        await session.execute(
            insert(Blob),
            [{"job_id": r["id"], "kind": "result", "digest": "cd" * 32, "content_type": "image/jpeg", "size": 1,
              "created_at": at} for r in found],
        )  # fmt: skip
    async with sessions() as session:
        mine = await jobs.cached_results(session, [photo], user_refs=["telegram:1"], owners=[])
        clients = await jobs.cached_results(session, [photo], user_refs=[], owners=["key:abc"])
        strangers = await jobs.cached_results(session, [photo], user_refs=["telegram:99"], owners=["key:zzz"])
    # six newer copies from other people would have filled the five rows a photo may bring back
    assert [job.id for job in mine[photo]] == [own["id"]]
    assert [job.id for job in clients[photo]] == [by_client["id"]]
    assert strangers == {}
