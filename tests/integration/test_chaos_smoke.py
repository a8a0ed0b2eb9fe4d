"""A short chaos run (``benchmarks/chaos.py``): the whole deployment as processes, SIGKILLed one part at a time.

Two gateways, two workers, both bots, a private RabbitMQ and a private Postgres; photos through the Telegram and
Discord fakes while something is killed every ~10 s (every other kill aimed: the Telegram bot mid-download, a
gateway while Telegram holds its sendPhoto's answer). Every photo must get its answer, a duplicate only where a
gateway died between a send and its receipt, and every job must end final.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import chaos


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_every_photo_gets_one_answer_whatever_crashes(tmp_path: Path) -> None:
    config = chaos.Config(
        photos=36,
        rate=0.8,
        kill_every=(6.0, 8.0),
        down=(1.0, 2.0),
        aimed_every=2,
        seed=11,
        deadline_s=45.0,
        quiet_s=5.0,
        out=tmp_path / "chaos.json",
        workdir=tmp_path / "work",
    )
    report = await chaos.run(config)
    summary, jobs = report["summary"], report["jobs"]
    anomalies = json.dumps(summary["anomalies"], indent=1)[:6000]
    kills = [k for k in report["kills"] if k["what"] == "kill"]
    assert len(kills) >= 3, report["kills"]
    assert all(k["what"] != "not-up" for k in report["kills"]), report["kills"]
    assert summary["photos"] == config.photos
    assert summary["lost"] == 0, anomalies
    assert summary["twice_unexplained"] == 0, anomalies
    assert summary["not_acknowledged_unexplained"] == 0, anomalies
    assert summary["photos_with_several_jobs"] == [], anomalies
    assert jobs["stuck"] == [], jobs["stuck"]
    assert jobs["total"] == config.photos - summary["not_acknowledged"]
    queue, dead = report["queues"].values()
    assert queue["consumers"] == config.workers and dead["consumers"] == config.gateways, report["queues"]
    assert report["logs"]["leaks"] == [], report["logs"]["leaks"]
    assert report["logs"]["unhandled_500s"] == 0, report["logs"]["errors"]
    assert report["self_exits"] == {}, report["self_exits"]
