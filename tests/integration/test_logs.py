"""Logs an operator can use: JSON lines on request, the job id on every line about a job, no secret anywhere."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from pathlib import Path

import aiohttp

from tests.conftest import eventually
from tests.images import jpeg
from tests.services import AMQP_URL, CLIENT_KEY, SIGNING_SECRET

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_json_logs_carry_the_job_id_and_no_secret(tmp_path: Path, queue_name: str) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DETECTBOT_")}
    env.update(
        PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", DETECTBOT_LOG_FORMAT="json", DETECTBOT_QUEUE=queue_name,
        DETECTBOT_AMQP_URL=AMQP_URL, DETECTBOT_DATA_DIR=str(tmp_path / "data"), DETECTBOT_PORT=str(port),
        DETECTBOT_API_KEYS=CLIENT_KEY, DETECTBOT_SIGNING_SECRET=SIGNING_SECRET,
        DETECTBOT_GATEWAY_URL=f"http://127.0.0.1:{port}", DETECTBOT_MODEL="py:tests.detectors:fixed",
        DETECTBOT_INFER_THREADS="1",
    )  # fmt: skip
    logs = {name: tmp_path / f"{name}.log" for name in ("gateway", "worker")}
    processes = []
    for name, module in (("gateway", "queue_gateway"), ("worker", "worker")):
        with logs[name].open("wb") as out:
            processes.append(
                await asyncio.create_subprocess_exec(sys.executable, "-m", module, env=env, stderr=out, cwd=tmp_path)
            )
    try:
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                        body = await response.json()
                        return response.status == 200 and "task" not in json.dumps(body)
                except aiohttp.ClientError:
                    return False

            await eventually(ready, timeout=60, every=0.2, what="the gateway")
            form = aiohttp.FormData()
            form.add_field("image", jpeg(), filename="p.jpg")
            headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
            async with http.post(f"http://127.0.0.1:{port}/v1/jobs", data=form, headers=headers) as response:
                job_id = (await response.json())["job_id"]

            async def done() -> bool:
                url = f"http://127.0.0.1:{port}/v1/jobs/{job_id}?wait=5"
                async with http.get(url, headers=headers) as response:
                    return (await response.json())["status"] == "done"

            await eventually(done, timeout=60, what="the job")

            async def worker_logged_it() -> bool:
                return f"job {job_id}: done" in logs["worker"].read_text()

            await eventually(worker_logged_it, timeout=20, what="the worker's line")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            await asyncio.wait_for(process.wait(), 30)
    about_the_job = []
    for name, path in logs.items():
        for line in path.read_text().splitlines():
            record = json.loads(line)  # every line is one JSON object
            assert {"time", "level", "logger", "message"} <= set(record), line
            if job_id in record["message"]:
                assert record["job_id"] == job_id, line
                about_the_job.append((name, record["message"]))
            assert CLIENT_KEY not in line and SIGNING_SECRET not in line
    assert {name for name, _ in about_the_job} == {"gateway", "worker"}
    assert any(message.startswith(f"job {job_id} queued (http") for _, message in about_the_job)  # the intake line
