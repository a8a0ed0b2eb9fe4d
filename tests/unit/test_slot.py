"""An inference slot's process and the socket to it (``worker.slot``): calls and their answers, errors with the
process's traceback, the process's death seen by the waiting call, a cancelled call that cannot leave the socket
out of step, and a process that ends with its worker."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import eventually
from worker.slot import RemoteTraceback, SlotDied, SlotProcess

_state: dict[str, object] = {}


def _remember(value: object) -> None:
    _state["value"] = value


def _recall() -> object:
    return _state["value"]


def _echo(data: bytes) -> bytes:
    return data[::-1]


def _pid() -> int:
    return os.getpid()


def _fail(message: str) -> None:
    raise ValueError(message)


def _die() -> None:
    os._exit(70)


def _wait(folder: str) -> str:
    """Say it started (``started`` in ``folder``), wait for the test's ``go`` there, then answer."""
    Path(folder, "started").touch()
    while not Path(folder, "go").exists():
        time.sleep(0.01)  # the process stands for a model at work
    return "late"


async def _started(folder: Path) -> None:
    async def check() -> bool:
        return (folder / "started").exists()

    await eventually(check, timeout=20, what="the call to reach the process")


@pytest.fixture
async def slot() -> AsyncIterator[SlotProcess]:
    process = SlotProcess(multiprocessing.get_context("spawn"), _remember, ("warm",), name="test-slot")
    await process.start()
    yield process
    await process.stop()


async def test_a_call_runs_in_the_process_after_its_initializer(slot: SlotProcess) -> None:
    assert await slot.call(_recall) == "warm"
    assert await slot.call(_pid) == slot.pid != os.getpid()
    photo = os.urandom(3_000_000)  # larger than the socket's buffers: the writes and reads take many turns
    assert await slot.call(_echo, photo) == photo[::-1]
    assert await slot.call(_echo, b"") == b""


async def test_an_error_crosses_with_where_it_came_from(slot: SlotProcess) -> None:
    with pytest.raises(ValueError, match="no such model") as raised:
        await slot.call(_fail, "no such model")
    assert isinstance(raised.value.__cause__, RemoteTraceback)
    assert "in _fail" in str(raised.value.__cause__)
    assert await slot.call(_recall) == "warm"  # and the process goes on answering


async def test_a_process_that_dies_mid_call_is_seen_at_once(slot: SlotProcess) -> None:
    with pytest.raises(SlotDied):
        await slot.call(_die)
    assert not slot.running
    with pytest.raises(SlotDied):
        await slot.call(_recall)


async def test_a_killed_process_ends_its_waiting_call(slot: SlotProcess, tmp_path: Path) -> None:
    call = asyncio.ensure_future(slot.call(_wait, str(tmp_path)))
    await _started(tmp_path)
    os.kill(slot.pid, signal.SIGKILL)
    with pytest.raises(SlotDied):
        await asyncio.wait_for(call, 10)


async def test_a_cancelled_call_kills_the_process_rather_than_answer_the_next_call_with_its_answer(
    slot: SlotProcess, tmp_path: Path
) -> None:
    call = asyncio.ensure_future(slot.call(_wait, str(tmp_path)))
    await _started(tmp_path)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    (tmp_path / "go").touch()  # the process would answer "late" now, had it not been killed
    assert not slot.running
    with pytest.raises(SlotDied):
        await slot.call(_recall)


async def test_a_slot_process_ends_with_its_worker() -> None:
    """The worker is SIGKILLed (no stop, no atexit): its slot's process sees its socket close and exits."""
    script = textwrap.dedent(
        """
        import asyncio, multiprocessing, os
        from tests.unit.test_slot import _pid, _remember
        from worker.slot import SlotProcess

        async def main():
            slot = SlotProcess(multiprocessing.get_context("spawn"), _remember, (1,), name="orphan")
            await slot.start()
            print(await slot.call(_pid), flush=True)
            os.kill(os.getpid(), 9)

        asyncio.run(main())
        """
    )
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(worker.communicate(), 60)
    assert worker.returncode == -signal.SIGKILL, err.decode()
    child = int(out.split()[0])

    async def gone() -> bool:
        return not _alive(child)

    await eventually(gone, timeout=10, what="the orphaned slot process to exit")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
