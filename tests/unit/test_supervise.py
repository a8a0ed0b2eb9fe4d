"""Background tasks under a Supervisor: a crash is logged, reported by problems(), and the task starts again."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from queue_gateway.runtime.supervise import Backoff, Supervisor, woken
from tests.conftest import eventually


async def test_a_crashed_task_is_reported_then_restarted(caplog: pytest.LogCaptureFixture) -> None:
    supervisor = Supervisor(max_delay_s=0.2)
    runs: list[int] = []
    crashed = asyncio.Event()
    release = asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs) + 1)
        if len(runs) == 1:
            crashed.set()
            raise RuntimeError("the database went away")
        await release.wait()  # the second run keeps going, as a healthy loop would

    supervisor.spawn("flaky", flaky)
    await asyncio.wait_for(crashed.wait(), 5)

    async def problem_seen() -> str | None:
        return supervisor.problems().get("flaky")

    problem = await eventually(problem_seen, timeout=5, every=0.01, what="the crash to be reported")
    assert "RuntimeError: the database went away" in problem
    await eventually(lambda: _true(len(runs) == 2), timeout=5, what="the restart")
    assert supervisor.problems() == {}
    assert supervisor.restarts() == {"flaky": 1}
    assert any("background task flaky crashed" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    await supervisor.stop()
    assert supervisor.problems() == {}


async def test_stop_cancels_only_the_named_tasks() -> None:
    supervisor = Supervisor()
    forever = asyncio.Event()
    supervisor.spawn("a", forever.wait)
    supervisor.spawn("b", forever.wait)
    with pytest.raises(ValueError, match="already supervised"):
        supervisor.spawn("a", forever.wait)
    await supervisor.stop("a")
    assert set(supervisor.restarts()) == {"b"}
    await supervisor.stop()
    assert supervisor.restarts() == {}


def test_backoff_grows_to_its_maximum_and_resets() -> None:
    backoff = Backoff(initial=0.5, maximum=4.0)
    delays = [backoff.next_delay() for _ in range(6)]
    assert 0.4 <= delays[0] <= 0.6
    assert all(later >= earlier * 1.3 or later >= 3.2 for earlier, later in itertools.pairwise(delays))
    assert max(delays) <= 4.0 * 1.2
    backoff.reset()
    assert backoff.next_delay() <= 0.6


async def _true(value: bool) -> bool:
    return value


async def test_a_stop_is_not_lost_when_the_awaited_event_fires_at_the_same_moment() -> None:
    """The loops' waits (``woken``) give way to a cancellation that comes just as they are woken.

    ``asyncio.wait_for(event.wait(), …)`` swallows it on Python 3.11: the task being stopped then runs for ever
    (it hung the gateway's and the Telegram bot's shutdown).
    """
    event = asyncio.Event()

    async def loop_for_ever() -> None:
        while True:
            await woken(event, 10)
            event.clear()

    task = asyncio.create_task(loop_for_ever())
    for _ in range(3):
        await asyncio.sleep(0)  # let it reach its wait (one turn of the loop each, not a wait for work)
    event.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)


async def test_woken_says_whether_the_event_came() -> None:
    event = asyncio.Event()
    assert await woken(event, 0.01) is False
    event.set()
    assert await woken(event, 10) is True
