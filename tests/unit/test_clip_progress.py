"""The worker's clip progress: every frame the slot finishes is heard, but the gateway hears the latest at most once
every interval, and a report that fails costs nothing."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from tests.conftest import eventually
from worker.clipjobs import ProgressReporter


@dataclass
class RecordingLink:
    """The gateway link as the reporter uses it (an interface of ours): records each report, refuses some."""

    sent: list[tuple[int, int]] = field(default_factory=list)
    at: list[float] = field(default_factory=list)
    refuse: bool = False

    async def post_progress(self, signed_url: str, done: int, total: int) -> bool:
        self.sent.append((done, total))
        self.at.append(time.monotonic())
        return not self.refuse


async def test_a_burst_of_frames_is_one_report_then_the_latest_after_the_pause() -> None:
    link = RecordingLink()
    reporter = ProgressReporter(link, "/progress", every_s=0.2)  # type: ignore[arg-type]
    task = asyncio.create_task(reporter.run())
    try:
        reporter(0, 120)  # nothing done yet: nothing to say
        for done in range(1, 61):
            reporter(done, 120)
        await eventually(lambda: _holds(link.sent == [(60, 120)]), timeout=5, what="the first report")
        for done in range(61, 121):  # the slot goes on while the reporter pauses
            reporter(done, 120)
        await eventually(lambda: _holds(link.sent[-1:] == [(120, 120)]), timeout=5, what="the latest report")
        assert link.sent == [(60, 120), (120, 120)] and reporter.reports == 2
        assert link.at[1] - link.at[0] >= 0.19  # never more often than every_s
    finally:
        task.cancel()


async def test_a_refused_report_is_dropped() -> None:
    link = RecordingLink(refuse=True)
    reporter = ProgressReporter(link, "/progress", every_s=0.01)  # type: ignore[arg-type]
    task = asyncio.create_task(reporter.run())
    try:
        reporter(3, 30)
        await eventually(lambda: _holds(bool(link.sent)), timeout=5, what="a report")
        assert reporter.reports == 0 and link.sent == [(3, 30)]
    finally:
        task.cancel()


async def _holds(value: bool) -> bool:
    return value
