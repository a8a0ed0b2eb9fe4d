"""Postgres crashes under a running gateway: on a private cluster (``tests/nodes.py``) that the test SIGKILLs.

Nothing accepted is lost or done twice, a request is answered 202 or 503 + Retry-After (never 500), the
delivery loop and the readiness check follow the database down and back up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from db.models import Blob, Job
from queue_gateway.appkeys import supervisor_key
from tests.conftest import eventually
from tests.fakes.telegram_api import Call
from tests.images import jpeg
from tests.nodes import PrivatePostgres
from tests.services import GatewayHandle
from tests.telegram_stack import Stack

FIXED = "py:tests.detectors:fixed"
RESUME_S = 10.0  # after the database is back, a new photo is done within this
CHAT = 5151


@dataclass
class Attempt:
    key: str
    started: float
    ended: float
    status: int
    retry_after: str | None


@dataclass
class Load:
    """HTTP clients that send photos one after another, each with its own Idempotency-Key, and send a photo
    again after a 503 (honouring Retry-After, capped to keep the test short) until it is accepted."""

    http: aiohttp.ClientSession
    gateway: GatewayHandle
    accepted: dict[str, str] = field(default_factory=dict)  # idempotency key -> job id
    attempts: list[Attempt] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    failure: BaseException | None = None

    async def client(self, name: str, pause: float) -> None:
        try:
            await self._client(name, pause)
        except Exception as exc:  # an answer that is neither 202 nor 503 + Retry-After: the test fails with it
            self.failure = exc
            self.stop.set()

    async def _client(self, name: str, pause: float) -> None:
        number = 0
        while not self.stop.is_set():
            key = f"{name}-{number}"
            data = jpeg(160, 120)
            while key not in self.accepted:
                status, body, retry_after = await self.send(key, data)
                if status in (200, 202):
                    self.accepted[key] = body["job_id"]
                else:
                    await asyncio.sleep(min(float(retry_after or 1), 1.0))  # a client's back-off before it retries
            number += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), pause)  # pacing the load

    async def send(self, key: str, data: bytes) -> tuple[int, dict[str, Any], str | None]:
        form = aiohttp.FormData()
        form.add_field("image", data, filename="photo.jpg", content_type="application/octet-stream")
        headers = {**self.gateway.headers(), "Idempotency-Key": key}
        started = time.monotonic()
        async with self.http.post(f"{self.gateway.url}/v1/jobs", data=form, headers=headers) as response:
            body = await response.json()
            retry_after = response.headers.get("Retry-After")
            attempt = Attempt(key, started, time.monotonic(), response.status, retry_after)
        self.attempts.append(attempt)
        assert response.status in (200, 202, 503), (response.status, body)  # never a 500
        if response.status == 503:
            assert retry_after is not None and body.get("retry_after"), body
        return response.status, body, retry_after


async def job_statuses(gateway: GatewayHandle) -> dict[str, str]:
    async with gateway.sessions() as session:
        return {job_id: status for job_id, status in (await session.execute(select(Job.id, Job.status))).all()}


async def result_counts(gateway: GatewayHandle) -> dict[str, int]:
    async with gateway.sessions() as session:
        rows = await session.execute(
            select(Blob.job_id, func.count()).where(Blob.kind == "result").group_by(Blob.job_id)
        )
        return {job_id: int(n) for job_id, n in rows.all()}


@pytest.mark.slow
async def test_photos_flow_through_four_postgres_crashes_and_each_is_done_once(
    private_postgres: PrivatePostgres, start_gateway, start_worker, http: aiohttp.ClientSession
) -> None:
    pg = private_postgres
    gateway = await start_gateway(database_url=pg.url, database_retry_s=4.0)
    await start_worker(gateway, model=FIXED)
    load = Load(http, gateway)
    clients = [asyncio.create_task(load.client(f"client{n}", pause=0.3)) for n in range(2)]
    outages: list[tuple[float, float]] = []  # (killed, back) per crash
    resumed_in: list[float] = []
    try:
        for down_s in (1.0, 2.0, 1.5, 6.0):  # the last one outlasts database_retry_s: those requests get 503
            before = len(load.accepted)
            await eventually(lambda n=before: _more(load, n + 3), timeout=30, what="photos to flow")  # type: ignore[misc]
            killed = time.monotonic()
            pg.kill()
            await asyncio.sleep(down_s)  # the outage itself: the database stays away this long
            await pg.start()
            back = time.monotonic()
            outages.append((killed, back))
            resumed_in.append(await _time_to_a_done_photo(load, gateway, back))
    finally:
        load.stop.set()
        await asyncio.gather(*clients)
    if load.failure is not None:
        raise load.failure
    assert max(resumed_in) <= RESUME_S, resumed_in
    # requests in hand while the database was away (sent during the outage, or just before it and caught by it)
    # waited for it (database_retry_s) and were accepted
    for killed, back in outages[:3]:
        waited = [a for a in load.attempts if a.started < back and a.ended > killed and a.status == 202]
        assert waited, f"no request during the outage at {killed:.1f} was held and accepted"
        assert max(a.ended for a in waited) >= back - 0.1, "no request waited for the database to be back"
    killed, back = outages[3]
    overlapping = [a for a in load.attempts if a.started < back and a.ended > killed]
    assert any(a.status == 503 for a in overlapping), "the outage longer than database_retry_s gave no 503"
    # every accepted photo is one job, done once, with one result
    job_ids = set(load.accepted.values())
    assert len(job_ids) == len(load.accepted)

    async def all_done() -> dict[str, str] | None:
        statuses = await job_statuses(gateway)
        return statuses if all(statuses.get(job_id) == "done" for job_id in job_ids) else None

    statuses = await eventually(all_done, timeout=60, every=0.2, what="every accepted photo to be done")
    assert set(statuses) == job_ids  # no job the clients were not told about
    counts = await result_counts(gateway)
    assert {job_id: counts.get(job_id, 0) for job_id in job_ids} == dict.fromkeys(job_ids, 1)


async def _more(load: Load, count: int) -> bool:
    if load.failure is not None:
        raise load.failure
    return len(load.accepted) >= count


async def _time_to_a_done_photo(load: Load, gateway: GatewayHandle, back: float) -> float:
    """Seconds from ``back`` until a photo that was accepted after ``back`` is done."""

    async def done_after_back() -> float | None:
        fresh = {a.key for a in load.attempts if a.started >= back and a.status == 202}
        job_ids = {load.accepted[key] for key in fresh if key in load.accepted}
        statuses = await job_statuses(gateway)
        return time.monotonic() - back if any(statuses.get(job_id) == "done" for job_id in job_ids) else None

    return await eventually(done_after_back, timeout=RESUME_S + 20, every=0.1, what="the flow to resume")


# --- delivery to chats -----------------------------------------------------------------------------------


def reply_target(call: Call) -> int | None:
    parameters = call.params.get("reply_parameters")
    return int(parameters["message_id"]) if parameters else None


async def delivered_jobs(stack: Stack) -> list[Job]:
    async with stack.gateway.sessions() as session:
        return list((await session.scalars(select(Job).where(Job.delivered_at.is_not(None)))).all())


async def nothing_due(stack: Stack) -> bool:
    async with stack.gateway.sessions() as session:
        due = await session.scalar(select(func.count()).select_from(Job).where(Job.next_delivery_at.is_not(None)))
    return due == 0


async def test_photos_sent_while_postgres_is_down_are_delivered_once_it_is_back(
    private_postgres: PrivatePostgres, start_telegram: Callable[..., Awaitable[Stack]], http: aiohttp.ClientSession
) -> None:
    pg = private_postgres
    stack = await start_telegram(database_url=pg.url)
    fake = stack.fake
    fake.send_photo_update(CHAT, data=jpeg())
    await stack.delivered("sendPhoto")  # the whole path works
    pg.kill()
    sent = [fake.send_photo_update(CHAT + n, data=jpeg()) for n in range(1, 4)]
    last = sent[-1]["update_id"]
    await fake.wait_for_call("getUpdates", lambda c: any(u["update_id"] == last for u in c.result or []))
    # the bot has the photos in hand, and the gateway, which its requests for them wait on, sees the database down:
    # that is the outage this test is about
    await gateway_sees_the_database_down(http, stack.gateway)
    assert len(fake.calls_of("sendPhoto")) == 1
    await pg.start()
    back = time.monotonic()
    photos = await stack.delivered("sendPhoto", count=4, timeout=60)
    assert sorted(reply_target(c) or 0 for c in photos[1:]) == sorted(u["message"]["message_id"] for u in sent)
    assert max(c.at for c in photos) - back < 20
    await eventually(lambda: nothing_due(stack), timeout=30, what="every delivery and status edit to be recorded")
    assert len(fake.calls_of("sendPhoto")) == 4  # and nothing is due that could send one again
    assert len(await delivered_jobs(stack)) == 4
    assert "delivery" not in stack.gateway.app[supervisor_key].problems()


async def test_delivery_in_flight_when_postgres_dies_is_recorded_and_not_sent_again(
    private_postgres: PrivatePostgres, start_telegram: Callable[..., Awaitable[Stack]], http: aiohttp.ClientSession
) -> None:
    pg = private_postgres
    stack = await start_telegram(database_url=pg.url)
    fake = stack.fake
    hold = fake.hold_next("sendPhoto")  # Telegram takes the photo but is slow to answer
    update = fake.send_photo_update(CHAT, data=jpeg())
    await asyncio.wait_for(hold.arrived.wait(), 30)
    pg.kill()  # the receipt cannot be written now
    hold.release()
    await gateway_sees_the_database_down(http, stack.gateway)  # the outage, while the receipt waits for it
    await pg.start()

    async def recorded() -> list[Job] | None:
        jobs = await delivered_jobs(stack)
        return jobs if jobs and jobs[0].delivery_receipt else None

    (job,) = await eventually(recorded, timeout=30, what="the delivery to be recorded")
    assert job.status == "delivered"
    assert job.delivery_receipt is not None
    assert job.delivery_receipt["sent"] == [str(hold.call.result["message_id"])]  # type: ignore[union-attr]
    # the loop lives on: the next photo goes out too, and the first was sent exactly once
    later = fake.send_photo_update(CHAT, data=jpeg())
    photos = await stack.delivered("sendPhoto", count=2, timeout=30)
    await eventually(lambda: nothing_due(stack), timeout=30, what="every delivery to be recorded")
    assert [reply_target(c) for c in fake.calls_of("sendPhoto")] == [
        update["message"]["message_id"],
        later["message"]["message_id"],
    ]
    assert len(photos) == 2


async def gateway_sees_the_database_down(http: aiohttp.ClientSession, gateway: GatewayHandle) -> None:
    async def down() -> bool:
        async with http.get(f"{gateway.url}/readyz", headers=gateway.headers(admin=True)) as response:
            body = await response.json()
        return response.status == 503 and str(body["checks"]["database"]).startswith("error")

    await eventually(down, timeout=10, what="the gateway's /readyz to say the database is down")


# --- readiness ---------------------------------------------------------------------------------------------


async def test_readyz_follows_postgres_down_and_back_up(
    private_postgres: PrivatePostgres, start_gateway, http: aiohttp.ClientSession
) -> None:
    pg = private_postgres
    gateway = await start_gateway(database_url=pg.url)

    async def readiness() -> tuple[int, dict[str, Any]]:
        async with http.get(f"{gateway.url}/readyz", headers=gateway.headers(admin=True)) as response:
            return response.status, await response.json()

    assert (await readiness())[0] == 200
    pg.kill()

    async def not_ready() -> dict[str, Any] | None:
        status, body = await readiness()
        return body if status == 503 else None

    body = await eventually(not_ready, timeout=10, what="/readyz to say not ready")
    assert body["status"] == "not ready"
    assert body["checks"]["database"].startswith("error")
    assert body["checks"]["broker"] == "ok"
    await pg.start()

    async def ready() -> dict[str, Any] | None:
        status, body = await readiness()
        return body if status == 200 else None

    body = await eventually(ready, timeout=10, what="/readyz to say ready again")
    assert body["status"] == "ready"
    assert set(body["checks"].values()) == {"ok"}
