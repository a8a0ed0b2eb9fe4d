"""The intake's policy (limits, fair share) as a pure function, and the intake itself on SQLite with a publisher
double: what is stored, published, held, refused and answered — no broker, no Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from db import jobs
from queue_gateway.database import Database
from queue_gateway.errors import TooManyInLine, Unavailable
from queue_gateway.intake import Intake, Limits, Rates, Seen, admit
from queue_gateway.publisher import QueueFull
from tests.unit.doubles import FakePublisher, new_job, sqlite_database

AT = 1_700_000_000.0


def seen(**in_line: jobs.InLine) -> Seen:
    return Seen(dict(in_line), {}, {})


def test_a_person_may_have_so_many_in_line_and_an_album_counts_once() -> None:
    limits = Limits(person=Rates(max_in_line=2, per_minute=100, fair_share=10))
    photos = [new_job(user="1") for _ in range(3)]
    album = [new_job(user="2", group_key="telegram:2:a", group_size=3, group_index=i) for i in range(3)]
    more = new_job(user="2")
    verdict = admit([*photos, *album, more], seen(), limits, AT)
    assert list(verdict.refused) == [photos[2].id]  # person 2's album of three and one photo: two submissions
    refusal = verdict.refused[photos[2].id]
    assert isinstance(refusal, TooManyInLine) and refusal.limit == 2 and refusal.code == "too_many_in_line"


def test_over_a_minute_or_a_day_is_refused_with_when_to_come_back() -> None:
    limits = Limits(person=Rates(max_in_line=10, per_minute=2, per_day=3, fair_share=10))
    batch = [new_job(user="1") for _ in range(3)]
    verdict = admit(batch, Seen({}, {}, {}), limits, AT)
    assert [verdict.refused[j.id].code for j in batch if j.id in verdict.refused] == ["rate_limited"]
    daily = admit([new_job(user="1")], Seen({}, {"telegram:1": 0}, {"telegram:1": 3}), limits, AT)
    [quota] = daily.refused.values()
    assert quota.code == "quota" and quota.retry_after == int(86400 - AT % 86400)


def test_past_the_fair_share_photos_are_stored_but_held() -> None:
    limits = Limits(person=Rates(max_in_line=10, per_minute=100, fair_share=2))
    mine = [new_job(user="1") for _ in range(4)]
    theirs = new_job(user="2")
    verdict = admit([*mine, theirs], seen(), limits, AT)
    assert verdict.refused == {} and verdict.held == {mine[2].id, mine[3].id}  # someone else is never held for me


def test_a_client_key_has_rates_of_its_own() -> None:
    limits = Limits(person=Rates(max_in_line=1), key=Rates(max_in_line=3, per_minute=100, fair_share=1))
    keyed = [new_job(platform="http") for _ in range(4)]
    for job in keyed:
        job.user_ref = "key:abcdef"
    verdict = admit(keyed, seen(), limits, AT)
    assert list(verdict.refused) == [keyed[3].id] and verdict.held == {keyed[1].id, keyed[2].id}


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    async for found in sqlite_database(tmp_path):
        yield found


async def running(intake: Intake) -> asyncio.Task[None]:
    return asyncio.create_task(intake.run())


async def test_a_burst_is_stored_and_published_each_in_its_place(database: Database) -> None:
    publisher = FakePublisher()
    intake = Intake(database, publisher, busy_retry_after_s=30)  # type: ignore[arg-type]
    task = await running(intake)
    try:
        answers = await asyncio.gather(*(intake.submit(new_job(user=str(n))) for n in range(6)))
    finally:
        task.cancel()
    assert sorted(a.position for a in answers) == [1, 2, 3, 4, 5, 6]
    assert {a.status for a in answers} == {"queued"} and len(publisher.published) == 6
    async with database.sessions() as session:
        assert await jobs.waiting_before(session, 2e9) == 6


async def test_a_full_queue_withdraws_the_job_and_says_busy(database: Database) -> None:
    intake = Intake(database, FakePublisher(refuse=QueueFull), busy_retry_after_s=12)  # type: ignore[arg-type]
    task = await running(intake)
    try:
        with pytest.raises(Unavailable) as busy:
            await intake.submit(new_job())
    finally:
        task.cancel()
    assert busy.value.code == "busy" and busy.value.retry_after == 12
    async with database.sessions() as session:
        assert await jobs.waiting_before(session, 2e9) == 0  # nothing kept


async def test_the_same_idempotency_key_answers_with_the_first_job(database: Database) -> None:
    intake = Intake(database, FakePublisher(), busy_retry_after_s=30)  # type: ignore[arg-type]
    task = await running(intake)
    try:
        first, again = new_job(), new_job()
        first.idempotency_key = again.idempotency_key = "telegram:42:7"
        answers = await asyncio.gather(intake.submit(first), intake.submit(again))
    finally:
        task.cancel()
    assert answers[0].job_id == answers[1].job_id and sorted(a.duplicate for a in answers) == [False, True]


async def test_a_job_is_in_flight_for_the_relay_from_its_publish_until_it_is_marked_queued(database: Database) -> None:
    seen: list[set[str]] = []
    publishing: set[str] = set()

    class Watching(FakePublisher):
        async def publish(self, job_id: str, params: Any, **options: Any) -> None:
            seen.append(set(publishing))  # what the relay would leave alone at this moment
            await super().publish(job_id, params, **options)

    intake = Intake(database, Watching(), busy_retry_after_s=30, publishing=publishing)  # type: ignore[arg-type]
    task = await running(intake)
    try:
        new = new_job()
        answer = await intake.submit(new)
    finally:
        task.cancel()
    assert seen == [{new.id}] and answer.status == "queued"
    assert publishing == set()  # marked queued: the relay's again, should it ever need it
