"""Every service runs on the event loop its settings name: uvloop by default where it is installed."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop

from queue_gateway.runtime.config import DetectbotSettings
from queue_gateway.runtime.entry import run_loop
from queue_gateway.runtime.errors import CannotStart


async def _loop_type() -> type:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop())


def test_a_service_runs_on_uvloop_by_default_and_on_asyncio_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DETECTBOT_EVENT_LOOP", raising=False)
    assert run_loop(_loop_type(), DetectbotSettings()) is uvloop.Loop
    assert run_loop(_loop_type(), DetectbotSettings(event_loop="uvloop")) is uvloop.Loop
    monkeypatch.setenv("DETECTBOT_EVENT_LOOP", "asyncio")
    chosen = run_loop(_loop_type(), DetectbotSettings())
    assert not issubclass(chosen, uvloop.Loop) and issubclass(chosen, asyncio.BaseEventLoop)


def test_without_uvloop_auto_falls_back_and_an_explicit_choice_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what `import uvloop` meets where it is not installed
    assert not issubclass(run_loop(_loop_type(), DetectbotSettings(event_loop="auto")), uvloop.Loop)
    with pytest.raises(CannotStart, match="uvloop is not installed"):
        run_loop(_loop_type(), DetectbotSettings(event_loop="uvloop"))
