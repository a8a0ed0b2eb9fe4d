"""No worker running, without the broker: the watch's arithmetic, the admins told once by one of two replicas (and
once when the workers are back), the status messages of waiting photos, and the job view's honest estimate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from db import deliveries, jobs
from db.common import now
from queue_gateway.database import Database
from queue_gateway.job_json import job_view
from queue_gateway.notify.admins import AdminAlerts
from queue_gateway.notify.base import ChatClock
from queue_gateway.notify.progress import ProgressUpdater
from queue_gateway.pace import Pace
from queue_gateway.public import texts
from queue_gateway.typed_job import TypedJob
from queue_gateway.worker_watch import WorkerWatch
from tests.unit.doubles import FakeNotifier, ManualClock, add_jobs, failing, new_job, sqlite_database


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    async for found in sqlite_database(tmp_path):
        yield found


def test_the_watch_counts_from_when_the_last_worker_went() -> None:
    clock = ManualClock()
    watch = WorkerWatch(notice_s=30, clock=clock)
    watch.observe(None)  # the broker has not answered yet: nothing is known, nothing is said
    assert watch.online is None and not watch.waiting_for_worker()
    watch.observe(2)
    clock.advance(100)
    assert not watch.waiting_for_worker() and watch.gone_for() == 0
    watch.observe(0)
    clock.advance(29)
    watch.observe(0)
    assert not watch.waiting_for_worker() and watch.gone_for() == 29
    clock.advance(1)
    watch.observe(None)  # the broker went away meanwhile: what was known stands
    assert watch.waiting_for_worker() and watch.noticed_since() == 1100 + 30
    watch.observe(1)
    assert not watch.waiting_for_worker() and watch.gone_since is None


async def test_one_of_two_replicas_tells_each_admin_once_then_once_that_workers_are_back(database: Database) -> None:
    clock = ManualClock(start=now())
    async with database.sessions.begin() as session:
        await add_jobs(session, database, [new_job(user=str(n)) for n in range(3)])
    notifiers = [FakeNotifier(), FakeNotifier()]  # each replica's own connection to Telegram
    watches = [WorkerWatch(notice_s=30, clock=clock) for _ in notifiers]
    admins = ["telegram:5001", "telegram:5002", "discord:9"]  # no Discord notifier here: that one is skipped
    replicas = [AdminAlerts(database, watch, {"telegram": notifier}, admins, alert_s=120, clock=clock)
                for watch, notifier in zip(watches, notifiers, strict=True)]  # fmt: skip
    for watch in watches:
        watch.observe(0)
    clock.advance(119)
    for replica in replicas:
        await replica.check()
    assert notifiers[0].told == notifiers[1].told == []  # not yet
    clock.advance(1)
    for _ in range(3):  # every few seconds, on both replicas, for as long as it lasts
        for replica in replicas:
            await replica.check()
        clock.advance(5)
    told = notifiers[0].told + notifiers[1].told
    alert = texts.ntext("alert_no_worker", 3, None, duration=texts.eta(120))
    assert sorted(told) == [("5001", alert), ("5002", alert)]
    for watch in watches:
        watch.observe(1)
    for replica in replicas:
        await replica.check()
        await replica.check()
    back = [entry for entry in notifiers[0].told + notifiers[1].told if entry not in told]
    assert sorted(back) == [(a, texts.text("workers_back", None, duration=texts.eta(135))) for a in ("5001", "5002")]


async def test_an_admin_is_told_in_their_own_language_and_a_passing_failure_is_tried_again(database: Database) -> None:
    clock = ManualClock(start=now())
    async with database.sessions.begin() as session:
        from db import chats

        await chats.update_settings(session, "telegram", chats.person_scope("5001"), {"language": "ru"})
    notifier = FakeNotifier(failures=[failing(after=0.01)])  # Telegram's 429 once
    watch = WorkerWatch(notice_s=30, clock=clock)
    alerts = AdminAlerts(database, watch, {"telegram": notifier}, ["telegram:5001"], alert_s=60, clock=clock)
    watch.observe(0)
    clock.advance(60)
    await alerts.check()
    assert notifier.told == [("5001", texts.ntext("alert_no_worker", 0, "ru", duration=texts.eta(60, "ru")))]


async def test_waiting_photos_say_no_worker_runs_and_their_place_again_when_one_is_back(database: Database) -> None:
    clock, wall = ManualClock(), ManualClock(start=now())  # the updater's pace; the watch's wall clock
    watch = WorkerWatch(notice_s=30, clock=wall)
    made = [new_job(chat="42", user=str(n)) for n in range(4)]
    async with database.sessions.begin() as session:
        for n, job in enumerate(made):
            await add_jobs(session, database, [job], at=now() - 60 + n)
            await deliveries.set_status_message(session, job.id, f"s{n}")
    notifier = FakeNotifier(clock=ChatClock(clock))
    progress = ProgressUpdater(database, {"telegram": notifier}, Pace(), clock=clock, watch=watch,
                               chat_interval_s=0.0, message_interval_s=0.0)  # fmt: skip
    watch.observe(0)
    assert await progress.update_once() == 0  # the bot's own answers stand
    wall.advance(30)
    edited = 0
    for _ in range(4):  # a pass or a few: each photo once
        edited += await progress.update_once()
        clock.advance(1.1)
    assert edited == 4 and {u.text for u in notifier.updates} == {texts.text("no_worker")}
    assert all(u.cancel_job_id for u in notifier.updates)  # Cancel stays while they wait
    notifier.updates.clear()
    watch.observe(1)
    for _ in range(4):
        await progress.update_once()
        clock.advance(1.1)
    assert [u.text for u in notifier.updates] == [texts.queued_text(n + 1, Pace().eta_s(n + 1)) for n in range(4)]


async def test_the_job_view_says_it_waits_for_a_worker_and_makes_up_no_estimate(database: Database) -> None:
    new = new_job(platform="http")
    async with database.sessions.begin() as session:
        await add_jobs(session, database, [new])
    row = await database.read(lambda s: jobs.get_job(s, new.id))
    assert row is not None
    view = job_view(TypedJob.of(row), position=3, eta_s=12.0, language="ru", status_url="s", result_url="r",
                    no_worker=True)  # fmt: skip
    assert view.waiting_for_worker and view.eta_s is None and view.status_text == texts.text("no_worker", "ru")
    normal = job_view(TypedJob.of(row), position=3, eta_s=12.0, language=None, status_url="s", result_url="r")
    assert not normal.waiting_for_worker and normal.eta_s == 12.0
