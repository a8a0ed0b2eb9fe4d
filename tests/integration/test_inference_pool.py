"""The worker's inference pool over its slot processes: a job whose wait is cancelled (the worker's task ends
mid-photo) must not leave its slot's answer for the next job: that slot is rebuilt before its next photo."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.detectors import GATE_ENV, Gate
from tests.images import jpeg
from worker.inference import DetectorSpec, InferencePool, Job


async def test_a_cancelled_photo_costs_its_slot_not_the_next_photo_its_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(str(tmp_path / "gate"))
    monkeypatch.setenv(GATE_ENV, gate.path)  # read by the slot's process as it starts
    pool = InferencePool(DetectorSpec(model="py:tests.detectors:gated", data_dir=tmp_path), 1, timeout_s=60)
    await pool.start()
    try:
        first_pid = pool.pids[0]
        held = asyncio.ensure_future(pool.detect(Job(jpeg(640, 480))))
        await asyncio.sleep(0)  # the photo goes out; the task then waits for the answer
        held.cancel()
        with pytest.raises(asyncio.CancelledError):
            await held
        gate.release(2)  # the held photo would be answered now, had its process not been killed
        result = await pool.detect(Job(jpeg(320, 240)))
        assert (result.width, result.height) == (320, 240)  # this photo's answer, not the cancelled one's
        assert pool.pids != [first_pid]
        assert (await pool.detect(Job(jpeg(200, 100)))).width == 200
    finally:
        gate.close()
        await pool.close()
