"""Background tasks that outlive outages: each runs under a supervisor that restarts it when it crashes.

A loop handles the failures it expects (the database or the broker away) itself, retrying with
:class:`Backoff`; anything else ends the task, and the supervisor logs it, waits (exponentially longer, up to
``max_delay_s``) and starts it again. Until it runs again, :meth:`Supervisor.problems` names it, and the service's
``/readyz`` answers 503 with that name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

TaskFactory = Callable[[], Awaitable[None]]


async def woken(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` pass; True when it was set.

    Not ``asyncio.wait_for(event.wait(), …)``: on Python 3.11 that can swallow a cancellation arriving just as the
    event is set, and a task being stopped then runs on for ever.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


class Backoff:
    """Exponential delays with jitter for a loop that retries: 0.5 s, 1 s, 2 s … ``maximum``; reset on success."""

    def __init__(self, initial: float = 0.5, maximum: float = 10.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.failures = 0

    def next_delay(self) -> float:
        delay = min(self.initial * 2.0**self.failures, self.maximum)
        self.failures += 1
        return delay * random.uniform(0.8, 1.2)

    async def wait(self) -> None:
        """Sleep before the next try (a retry pause, not a wait for work)."""
        await asyncio.sleep(self.next_delay())

    def reset(self) -> None:
        self.failures = 0


@dataclass
class _Supervised:
    name: str
    factory: TaskFactory
    task: asyncio.Task[None] | None = None
    problem: str | None = None
    restarts: int = 0


class Supervisor:
    """Runs named background tasks with kept references; restarts any that crash; stops them all together."""

    def __init__(self, *, max_delay_s: float = 10.0, healthy_after_s: float = 30.0) -> None:
        self._max_delay_s = max_delay_s
        self._healthy_after_s = healthy_after_s
        self._tasks: dict[str, _Supervised] = {}

    def spawn(self, name: str, factory: TaskFactory) -> None:
        """Run ``factory()`` as the task ``name``, and again whenever it raises."""
        if name in self._tasks:
            raise ValueError(f"a task named {name!r} is already supervised")
        entry = self._tasks[name] = _Supervised(name, factory)
        entry.task = asyncio.create_task(self._run(entry), name=name)

    def problems(self) -> dict[str, str]:
        """Tasks that are not running right now, with the reason."""
        return {name: entry.problem for name, entry in self._tasks.items() if entry.problem}

    def restarts(self) -> dict[str, int]:
        """How often each task was restarted since it last ran well."""
        return {name: entry.restarts for name, entry in self._tasks.items()}

    async def stop(self, *names: str) -> None:
        """Cancel these tasks (all of them, when none are named) and wait for them to end."""
        entries = (
            [self._tasks.pop(name) for name in names if name in self._tasks] if names else list(self._tasks.values())
        )
        if not names:
            self._tasks.clear()
        tasks = [entry.task for entry in entries if entry.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, entry: _Supervised) -> None:
        while True:
            started = time.monotonic()
            try:
                await entry.factory()
            except Exception as exc:
                if time.monotonic() - started > self._healthy_after_s:
                    entry.restarts = 0  # it ran fine for a while: start the backoff over
                delay = min(0.5 * 2.0**entry.restarts, self._max_delay_s)
                entry.restarts += 1
                entry.problem = f"{entry.name} crashed ({type(exc).__name__}: {exc})"[:300]
                log.error("background task %s crashed; restarting in %.1f s", entry.name, delay, exc_info=exc)
                await asyncio.sleep(delay)  # a restart pause, not a wait for work
                entry.problem = None  # running again
                continue
            entry.problem = None
            return


@contextlib.asynccontextmanager
async def supervised() -> AsyncIterator[Supervisor]:
    """A supervisor whose tasks are stopped when the block ends."""
    supervisor = Supervisor()
    try:
        yield supervisor
    finally:
        await supervisor.stop()
