"""Operations over HTTP: stats from seeded jobs, dead letters and requeue, retention, forget."""

from __future__ import annotations

import io
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from PIL import Image
from sqlalchemy import func, select

from db import rollup
from db.models import Blob, Job
from queue_gateway.appkeys import retention_key
from tests.images import jpeg, poison_png
from tests.seed import Seeded, nearest_rank, seed_jobs
from tests.services import GatewayHandle, submit_photo, wait_finished

StartGateway = Callable[..., Awaitable[GatewayHandle]]


def seeds(now: float) -> list[Seeded]:
    h = 3600.0
    return [
        *[
            Seeded("telegram", "delivered", now - (k + 0.5) * h, 1.0, 2.0 + k, 0.5, ("person", "person", "bus"))
            for k in range(4)
        ],
        *[Seeded("http", "done", now - 2.2 * h, 10.0, 1.0, None, ("dog",)) for _ in range(3)],
        Seeded("http", "done", now - 0.1 * h, 0.0, 0.0, None, ("dog",), cache_hit=True),
        *[Seeded("discord", "failed", now - 5.5 * h) for _ in range(2)],
        Seeded("http", "dead", now - 6.5 * h),
        *[Seeded("telegram", "delivered", now - 30 * h, 1.0, 1.0, 1.0, ("cat",)) for _ in range(2)],  # too old
    ]


async def test_stats_match_the_seeded_jobs(
    start_gateway: StartGateway, database_url: str, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(database_url=database_url)
    now = time.time()
    seeded = seeds(now)
    async with gateway.sessions.begin() as session:
        await seed_jobs(session, seeded)
    async with http.get(f"{gateway.url}/v1/stats", headers=gateway.headers(admin=True)) as response:
        assert response.status == 200
        body = await response.json()
    first_hour = rollup.hour_of(now) - 23
    recent = [s for s in seeded if rollup.hour_of(s.received_at) >= first_hour]
    assert len(recent) == 11
    jobs = body["jobs"]
    assert (jobs["received"], jobs["done"], jobs["delivered"], jobs["failed"], jobs["dead"]) == (11, 8, 4, 2, 1)
    assert jobs["by_platform"] == {"telegram": 4, "http": 5, "discord": 2}
    assert jobs["waiting_now"] == {}
    assert (body["cache_hits"], body["dead_waiting"]) == (1, 1)
    worked = [s for s in recent if s.done_at is not None and not s.cache_hit]
    close = lambda value: pytest.approx(value, rel=0.02)  # noqa: E731 - 2 % histogram buckets
    waits = [s.wait_s for s in worked if s.wait_s is not None]
    assert body["latency_s"]["queue_wait"]["p50"] == close(nearest_rank(waits, 0.5))
    assert body["latency_s"]["queue_wait"]["p95"] == close(nearest_rank(waits, 0.95))
    works = [s.work_s for s in worked if s.work_s is not None]
    assert body["latency_s"]["processing"]["p95"] == close(nearest_rank(works, 0.95))
    e2e = [(s.delivered_at or s.done_at or 0) - s.received_at for s in recent if s.done_at is not None]
    e2e = [v for v in e2e if v > 0] + [0.001] * sum(1 for v in e2e if v == 0)  # the cache hit: 0 s (first bucket)
    assert body["latency_s"]["end_to_end"]["p50"] == close(nearest_rank(e2e, 0.5))
    assert body["latency_s"]["end_to_end"]["count"] == len(e2e) == 8
    assert [{"label": t["label"], "count": t["count"]} for t in body["top_labels"][:3]] == [
        {"label": "person", "count": 8},
        {"label": "bus", "count": 4},
        {"label": "dog", "count": 4},
    ]
    hourly = body["hourly"]
    assert len(hourly) == 24 and sum(h["jobs"] for h in hourly) == 11
    for index, hour in enumerate(hourly):
        expected = [s for s in recent if rollup.hour_of(s.received_at) == first_hour + index]
        assert hour["jobs"] == len(expected), index
    assert body["queue"] == {"depth": 0, "consumers": 0}
    async with http.get(f"{gateway.url}/v1/stats/chart.png", headers=gateway.headers(admin=True)) as response:
        assert response.status == 200 and response.content_type == "image/png"
        with Image.open(io.BytesIO(await response.read())) as png:
            assert png.size == (800, 360)


async def test_stats_follow_real_jobs(gateway: GatewayHandle, start_worker, http: aiohttp.ClientSession) -> None:
    await start_worker(gateway, model="py:tests.detectors:fixed")
    for _ in range(3):
        _, job = await submit_photo(http, gateway, jpeg())
        await wait_finished(http, gateway, job["job_id"])
    async with http.get(f"{gateway.url}/v1/stats", headers=gateway.headers(admin=True)) as response:
        body = await response.json()
    assert body["jobs"]["received"] == body["jobs"]["done"] == 3
    assert body["latency_s"]["processing"]["count"] == body["latency_s"]["end_to_end"]["count"] == 3
    assert [(t["label"], t["count"]) for t in body["top_labels"]] == [("bus", 3), ("person", 3)]
    assert [w["model"] for w in body["workers"]] == ["test-detector"]
    assert body["queue"]["consumers"] == 1


async def test_stats_need_a_bot_or_admin_key(gateway: GatewayHandle, http: aiohttp.ClientSession) -> None:
    for headers, status in (({}, 401), (gateway.headers(), 403)):  # no key; a client key
        for path in ("/v1/stats", "/v1/stats/chart.png", "/v1/dead-jobs"):
            async with http.get(f"{gateway.url}{path}", headers=headers) as response:
                assert response.status == status, path
    for headers in (gateway.headers(role="bot"), gateway.headers(admin=True)):
        async with http.get(f"{gateway.url}/v1/stats", headers=headers) as response:
            assert response.status == 200


async def test_dead_job_is_listed_and_requeue_completes_it(
    gateway: GatewayHandle, start_worker, http: aiohttp.ClientSession
) -> None:
    crashing = await start_worker(gateway, model="py:tests.detectors:crash_on_poison")
    _, poison = await submit_photo(http, gateway, poison_png(), filename="poison.png")
    assert (await wait_finished(http, gateway, poison["job_id"]))["status"] == "dead"
    async with http.get(f"{gateway.url}/v1/dead-jobs", headers=gateway.headers(admin=True)) as response:
        listed = (await response.json())["jobs"]
    assert [j["job_id"] for j in listed] == [poison["job_id"]]
    assert "3 times" in listed[0]["reason"]
    # the cause is fixed (a model that copes), then an admin requeues it
    await crashing.stop()
    await start_worker(gateway, model="py:tests.detectors:fixed")
    url = f"{gateway.url}/v1/jobs/{poison['job_id']}/requeue"
    async with http.post(url, headers=gateway.headers()) as response:
        assert response.status == 403  # not with a client key
    async with http.post(url, headers=gateway.headers(admin=True)) as response:
        assert response.status == 202
    job = await wait_finished(http, gateway, poison["job_id"])
    assert job["status"] == "done" and job["attempts"] == 1
    async with http.post(url, headers=gateway.headers(admin=True)) as response:
        assert response.status == 409


async def test_retention_purges_old_images_and_keeps_rows(
    gateway: GatewayHandle, start_worker, http: aiohttp.ClientSession
) -> None:
    await start_worker(gateway, model="py:tests.detectors:fixed")
    _, old = await submit_photo(http, gateway, jpeg())
    _, fresh = await submit_photo(http, gateway, jpeg())
    for job in (old, fresh):
        await wait_finished(http, gateway, job["job_id"])
    async with gateway.sessions.begin() as session:  # age the first job by eight days
        aged = await session.get(Job, old["job_id"])
        assert aged is not None
        aged.received_at -= 8 * 86400
    assert await gateway.app[retention_key].purge_once() == 1
    async with gateway.sessions() as session:
        kinds = lambda job_id: select(Blob.kind).where(Blob.job_id == job_id)  # noqa: E731
        assert list((await session.execute(kinds(old["job_id"]))).scalars()) == []
        assert sorted((await session.execute(kinds(fresh["job_id"]))).scalars()) == ["input", "result"]
        assert await session.scalar(select(func.count()).select_from(Job)) == 2
        old_row = await session.get(Job, old["job_id"])
        assert old_row is not None and old_row.purged_at is not None and old_row.detections is not None
    async with http.get(old["result_url"]) as response:
        assert response.status == 410


async def test_forget_removes_only_that_persons_data(gateway: GatewayHandle, http: aiohttp.ClientSession) -> None:
    import json

    async def submit_as(user: str) -> str:
        form = aiohttp.FormData()
        form.add_field("image", jpeg(), filename="p.jpg")
        form.add_field("origin", json.dumps({"platform": "telegram", "user_id": user, "chat_id": user}))
        async with http.post(f"{gateway.url}/v1/jobs", data=form, headers=gateway.headers(role="bot")) as response:
            return str((await response.json())["job_id"])

    mine = [await submit_as("111"), await submit_as("111")]
    theirs = await submit_as("222")
    async with http.post(
        f"{gateway.url}/v1/forget", json={"platform": "telegram", "user_id": "111"}, headers=gateway.headers(role="bot")
    ) as response:
        assert (await response.json())["forgotten"] == 2
    async with gateway.sessions() as session:
        left = set((await session.execute(select(Blob.job_id))).scalars())
        assert left == {theirs}
        for job_id in mine:
            row = await session.get(Job, job_id)
            assert row is not None and row.user_ref is None and row.origin is None
    async with http.post(
        f"{gateway.url}/v1/forget", json={"platform": "telegram", "user_id": "111"}, headers=gateway.headers(role="bot")
    ) as response:
        assert (await response.json())["forgotten"] == 0
