"""What a wire fake answered, and waiting on it: one recorder shared by the Telegram and the Discord fake.

A fake records every call it answered (:meth:`Recorder.record`); a test waits for calls with
:meth:`Recorder.wait_for`, which returns every matching call, oldest first, once there are ``count`` of them,
or fails with the list of calls seen. :meth:`Recorder.hold_next` takes the next matching call in without
answering it until the test releases it (a slow platform, or a crash between the platform's answer and ours).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

C = TypeVar("C")


@dataclass
class Hold(Generic[C]):
    """A call taken in but not answered yet: ``arrived`` is set when it came (``call`` says which)."""

    matches: Callable[[C], bool]
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    call: C | None = None

    def release(self) -> None:
        """Let the fake answer the held call (or, if none came yet, the next one)."""
        self.released.set()


class Recorder(Generic[C]):
    def __init__(self, describe: Callable[[C], str]) -> None:
        self.calls: list[C] = []
        self._describe = describe
        self._holds: list[Hold[C]] = []
        self._changed = asyncio.Event()

    def record(self, call: C) -> None:
        self.calls.append(call)
        self._changed.set()

    def notify(self) -> None:
        """Something else a waiter may be waiting for changed (a long poll began, a gateway frame came)."""
        self._changed.set()

    def hold_next(self, matches: Callable[[C], bool]) -> Hold[C]:
        hold: Hold[C] = Hold(matches)
        self._holds.append(hold)
        return hold

    def drop_hold(self, hold: Hold[C]) -> None:
        """Forget a hold that has not caught a call; one that has is released instead."""
        if hold in self._holds:
            self._holds.remove(hold)
        hold.release()

    async def held(self, call: C) -> None:
        """Called by the fake before it answers ``call``: waits for the release if a hold matches it."""
        hold = next((h for h in self._holds if h.matches(call)), None)
        if hold is None:
            return
        self._holds.remove(hold)
        hold.call = call
        hold.arrived.set()
        self._changed.set()
        await hold.released.wait()

    def release_all(self) -> None:
        """At shutdown: nothing stays held."""
        for hold in self._holds:
            hold.release()
        self._holds.clear()

    async def wait_for(self, matches: Callable[[C], bool], *, count: int = 1, timeout: float, what: str) -> list[C]:
        """Every recorded call that ``matches``, oldest first, once there are at least ``count``."""

        def found() -> list[C]:
            return [call for call in self.calls if matches(call)]

        await self.wait_until(lambda: len(found()) >= count, timeout=timeout, what=f"{count} {what}")
        return found()

    async def wait_until(self, condition: Callable[[], bool], *, timeout: float, what: str) -> None:
        """Wait (woken by every call) until ``condition()``; fail after ``timeout`` naming the calls seen."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            left = deadline - loop.time()
            if left <= 0:
                seen = "\n  ".join(self._describe(call) for call in self.calls) or "(none)"
                raise TimeoutError(f"waited {timeout:g}s for {what}; calls answered:\n  {seen}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
