"""Crashes, restarts and slow models: nothing is lost, nothing is done twice."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable

import aio_pika
import aiohttp
import pytest
from sqlalchemy import func, select

from db.models import Blob, Job
from tests.conftest import eventually
from tests.images import jpeg, poison_png
from tests.nodes import PrivateRabbitMQ
from tests.services import AMQP_URL, GatewayHandle, submit_photo, wait_finished

FIXED = "py:tests.detectors:fixed"
SLOW = "py:tests.detectors:slow_cpu"


async def job_row(gateway: GatewayHandle, job_id: str) -> Job:
    async with gateway.sessions() as session:
        job = await session.get(Job, job_id)
    assert job is not None
    return job


async def result_count(gateway: GatewayHandle, job_id: str) -> int:
    async with gateway.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(Blob).where(Blob.job_id == job_id, Blob.kind == "result")
        )
    return int(count or 0)


async def wait_status(gateway: GatewayHandle, job_id: str, status: str, timeout: float = 60) -> Job:
    async def check() -> Job | None:
        job = await job_row(gateway, job_id)
        return job if job.status == status else None

    return await eventually(check, timeout=timeout, what=f"job {job_id} to be {status}")


async def test_worker_killed_mid_job_is_redelivered_and_completed_once(
    gateway: GatewayHandle, spawn_worker_process, start_worker, http: aiohttp.ClientSession
) -> None:
    doomed = await spawn_worker_process(gateway, model=SLOW, DETECTBOT_TEST_SLOW_S="30", DETECTBOT_NAME="doomed")
    _, submitted = await submit_photo(http, gateway, jpeg(640, 480))
    job_id = submitted["job_id"]
    await wait_status(gateway, job_id, "processing")
    doomed.kill_group()  # SIGKILL the worker and its inference process
    await doomed.process.wait()
    await start_worker(gateway, model=FIXED, name="survivor")
    job = await wait_finished(http, gateway, job_id)
    assert job["status"] == "done"
    row = await job_row(gateway, job_id)
    assert row.attempts == 2
    assert row.worker == "survivor"
    assert await result_count(gateway, job_id) == 1


async def test_job_that_crashes_the_model_every_time_is_dead_after_three_deliveries(
    gateway: GatewayHandle, start_worker, http: aiohttp.ClientSession
) -> None:
    handle = await start_worker(gateway, model="py:tests.detectors:crash_on_poison")
    _, poison = await submit_photo(http, gateway, poison_png(), filename="poison.png")
    _, healthy = await submit_photo(http, gateway, jpeg())
    dead = await wait_finished(http, gateway, poison["job_id"])
    assert dead["status"] == "dead"
    assert dead["attempts"] == 3
    assert "3 times" in dead["error"]["message"]
    assert (await wait_finished(http, gateway, healthy["job_id"]))["status"] == "done"
    assert not handle.task.done()  # the worker itself survived its model's crashes
    # and it keeps working afterwards
    _, later = await submit_photo(http, gateway, jpeg())
    assert (await wait_finished(http, gateway, later["job_id"]))["status"] == "done"


async def test_job_that_kills_the_whole_worker_is_dead_after_three_attempts(
    gateway: GatewayHandle, spawn_worker_process, http: aiohttp.ClientSession
) -> None:
    _, poison = await submit_photo(http, gateway, poison_png(), filename="poison.png")
    job_id = poison["job_id"]
    deaths = 0
    for _ in range(6):
        worker = await spawn_worker_process(gateway, model="py:tests.detectors:kill_worker_on_poison")
        waiter = asyncio.create_task(worker.process.wait())
        finished = asyncio.create_task(wait_finished(http, gateway, job_id, timeout=60))
        done, _ = await asyncio.wait({waiter, finished}, return_when=asyncio.FIRST_COMPLETED)
        if finished in done:
            waiter.cancel()
            break
        finished.cancel()
        assert worker.process.returncode == -signal.SIGKILL, worker.output()
        deaths += 1
    job = await wait_finished(http, gateway, job_id)
    assert job["status"] == "dead", job
    assert job["attempts"] == 3
    assert deaths == 3  # three workers died on it; the fourth was told it is dead


async def test_model_error_is_a_final_failure_told_to_the_client(
    gateway: GatewayHandle, start_worker, http: aiohttp.ClientSession
) -> None:
    await start_worker(gateway, model="py:tests.detectors:raising")
    _, submitted = await submit_photo(http, gateway, jpeg())
    job = await wait_finished(http, gateway, submitted["job_id"])
    assert job["status"] == "failed"
    assert job["attempts"] == 1
    assert job["error"]["code"] == "model_error"
    assert "RuntimeError" in job["error"]["message"]


async def test_gateway_stopped_before_publishing_loses_nothing(
    start_gateway: Callable[..., Awaitable[GatewayHandle]], start_worker, http: aiohttp.ClientSession, sqlite_url: str
) -> None:
    # the first gateway stores the job but cannot publish it (its broker is unreachable), then stops
    first = await start_gateway(amqp_url="amqp://guest:guest@127.0.0.1:1/", database_url=sqlite_url)
    status, submitted = await submit_photo(http, first, jpeg())
    assert status == 202 and submitted["status"] == "received"
    await first.stop()
    # on restart, its outbox relay publishes the job and a worker completes it
    second = await start_gateway(database_url=sqlite_url)
    await start_worker(second, model=FIXED)
    job = await wait_finished(http, second, submitted["job_id"])
    assert job["status"] == "done"
    assert job["attempts"] == 1


async def test_full_queue_answers_busy_and_keeps_nothing(
    start_gateway: Callable[..., Awaitable[GatewayHandle]], http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(max_queue_length=2, busy_retry_after_s=12)
    statuses: list[int] = []
    body: dict[str, object] = {}
    while 503 not in statuses:
        assert len(statuses) < 4, statuses  # a quorum queue lets at most one message past its limit
        status, body = await submit_photo(http, gateway, jpeg())
        statuses.append(status)
    assert statuses[:2] == [202, 202]
    assert body["error"] == "busy" and body["retry_after"] == 12
    assert "try again in about 12 s" in str(body["message"])
    async with gateway.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == statuses.count(202)


@pytest.mark.slow
async def test_slow_cpu_bound_detection_keeps_the_amqp_connection(
    gateway: GatewayHandle, start_worker, http: aiohttp.ClientSession, monkeypatch
) -> None:
    monkeypatch.setenv("DETECTBOT_TEST_SLOW_S", "20")
    handle = await start_worker(gateway, model=SLOW, heartbeat_s=5)
    _, submitted = await submit_photo(http, gateway, jpeg())
    job = await wait_finished(http, gateway, submitted["job_id"], timeout=90)
    assert job["status"] == "done"
    assert job["attempts"] == 1  # never redelivered: the broker never lost the worker
    assert job["timings"]["processing_s"] >= 19
    connection = handle.worker.connection
    assert connection is not None and not connection.is_closed
    assert connection.connection_attempt == 1  # no reconnect happened


async def test_sigterm_finishes_the_job_in_hand(
    gateway: GatewayHandle, spawn_worker_process, http: aiohttp.ClientSession
) -> None:
    worker = await spawn_worker_process(gateway, model=SLOW, DETECTBOT_TEST_SLOW_S="3")
    _, submitted = await submit_photo(http, gateway, jpeg())
    await wait_status(gateway, submitted["job_id"], "processing")
    os.kill(worker.process.pid, signal.SIGTERM)
    assert await asyncio.wait_for(worker.process.wait(), 60) == 0, worker.output()
    job = await wait_finished(http, gateway, submitted["job_id"], timeout=5)
    assert job["status"] == "done" and job["attempts"] == 1


async def consumer_count(queue: str, url: str = AMQP_URL) -> int:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.consumer_count or 0)
    finally:
        await connection.close()


async def test_worker_consumes_again_after_rabbitmq_restarts(
    private_rabbitmq: PrivateRabbitMQ, start_gateway, start_worker, http: aiohttp.ClientSession
) -> None:
    broker = private_rabbitmq  # this test's own node: killing it disturbs nobody
    gateway = await start_gateway(amqp_url=broker.url)
    await eventually(lambda: _ready(gateway), timeout=30, what="the gateway to reach the private broker")
    await broker.checkpoint()  # the new quorum queues are on disk before the crash (see tests/nodes.py)
    await eventually(lambda: _ready(gateway), timeout=30, what="the gateway to reconnect after the checkpoint")
    handle = await start_worker(gateway, model=FIXED, amqp_url=broker.url)
    queue = gateway.settings.queue
    assert await consumer_count(queue, broker.url) == 1
    broker.kill()  # SIGKILL of the whole node: a crash, not a shutdown
    await eventually(lambda: _closed(handle), timeout=30, what="the worker to notice the broker went away")
    await eventually(lambda: _not_ready(gateway), timeout=30, what="the gateway to notice the broker went away")
    await broker.start()  # the same node again, on its data: the durable quorum queue is back

    async def consuming_again() -> bool:
        try:
            return await consumer_count(queue, broker.url) == 1
        except Exception:
            return False

    await eventually(consuming_again, timeout=60, every=0.5, what="the worker's consumer to come back")
    await eventually(lambda: _ready(gateway), timeout=60, every=0.5, what="the gateway to reconnect")
    _, submitted = await submit_photo(http, gateway, jpeg())
    assert (await wait_finished(http, gateway, submitted["job_id"]))["status"] == "done"


async def _closed(handle) -> bool:
    connection = handle.worker.connection
    return connection is not None and connection.transport is None


async def _ready(gateway: GatewayHandle) -> bool:
    from queue_gateway.appkeys import link_key

    return bool(gateway.app[link_key].is_ready)


async def _not_ready(gateway: GatewayHandle) -> bool:
    return not await _ready(gateway)
