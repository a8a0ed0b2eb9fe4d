"""GIFs and short clips over HTTP, with real parts: the gateway refuses a clip over its limits at once (the limit in
the sentence, nothing stored), a real worker runs one frame by frame and reports how far it is, and the result is
its annotated animation; a clip never holds a worker's slot past its deadline."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import numpy as np
import pytest
from sqlalchemy import func, select

from db.models import Blob, Job
from queue_gateway.public import texts
from tests.clips import decoded, gif, numbered, video
from tests.conftest import eventually
from tests.detectors import POISON_RGB
from tests.images import jpeg
from tests.services import GatewayHandle, WorkerHandle, submit_photo, wait_finished

FIXED = "py:tests.detectors:fixed"
NAPPING = "py:tests.detectors:napping"
StartGateway = Callable[..., Awaitable[GatewayHandle]]
StartWorker = Callable[..., Awaitable[WorkerHandle]]


async def stored(gateway: GatewayHandle) -> tuple[int, int]:
    async with gateway.sessions() as session:
        jobs = await session.scalar(select(func.count()).select_from(Job))
        blobs = await session.scalar(select(func.count()).select_from(Blob))
    return int(jobs or 0), int(blobs or 0)


async def test_a_gif_comes_back_as_an_annotated_animation(
    start_gateway: StartGateway, start_worker: StartWorker, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway()
    await start_worker(gateway, model=FIXED)
    status, body = await submit_photo(http, gateway, gif(numbered(30, size=(320, 240)), fps=10), filename="a.gif")
    assert status == 202, body
    job = await wait_finished(http, gateway, body["job_id"])
    assert (job["status"], job["media"], job["result_type"]) == ("done", "clip", "video/mp4")
    assert job["image"] == {"format": "GIF", "width": 320, "height": 240}
    clip = job["clip"]
    assert (clip["container"], clip["codec"], clip["source_frames"], clip["frames"]) == ("gif", "gif", 30, 30)
    assert clip["duration_s"] == pytest.approx(3.0, abs=0.01) and clip["most"] == {"bus": 1, "person": 1}
    assert job["caption"] == "up to 1 bus, 1 person · 3.0 s"
    assert job["detections"] == [] and job["crops_url"] is None  # a clip's objects are not cut out
    async with http.get(f"{gateway.url}/v1/jobs/{body['job_id']}/crops", headers=gateway.headers()) as response:
        assert response.status == 404 and (await response.json())["message"].startswith("A clip's objects")
    assert job["labels"] == {"bus": "bus", "person": "person"}
    async with http.get(body["result_url"]) as response:
        assert response.status == 200 and response.content_type == "video/mp4"
        assert response.headers["Content-Disposition"].endswith('.mp4"')
        frames, about = decoded(await response.read())
    assert about["codec"] == "h264" and len(frames) == 30 and frames[0].shape == (240, 320, 3)
    async with http.get(f"{gateway.url}/v1/jobs/{body['job_id']}?lang=ru", headers=gateway.headers()) as response:
        assert (await response.json())["caption"] == "максимум 1 автобус, 1 человек · 3.0 с"


async def test_a_90_s_clip_is_refused_at_once_with_the_limit_and_nothing_is_kept(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway()
    long_gif = gif(numbered(2), durations_ms=[45_000, 45_000])
    long_mp4 = video(numbered(90, size=(64, 48)), fps=1)
    for data, name in ((long_gif, "long.gif"), (long_mp4, "long.mp4")):
        started = time.monotonic()
        status, body = await submit_photo(http, gateway, data, filename=name)
        assert time.monotonic() - started < 1.0
        assert (status, body["error"], body["limit"], body["value"]) == (422, "clip_too_long", 60, 90.0), body
        assert body["message"] == "That clip is 90 s long; the limit is 60 s."
        assert body["text"] == body["message"]
        status, body = await submit_photo(http, gateway, data, filename=name, headers={"Accept-Language": "ru"})
        assert body["text"] == "Это видео длится 90 с, а можно не больше 60 с."
    big = await start_gateway(clip_max_bytes=2048)
    status, body = await submit_photo(http, big, video(numbered(30, size=(320, 240)), fps=10), filename="big.mp4")
    assert (status, body["error"], body["limit"]) == (413, "clip_too_large", 2048)
    assert body["value"] > 2048 and body["message"].startswith("That clip is ")
    assert await stored(gateway) == (0, 0) and await stored(big) == (0, 0)


async def test_the_worker_reports_frame_after_frame_while_it_works(
    start_gateway: StartGateway, start_worker: StartWorker, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DETECTBOT_TEST_NAP_S", "0.15")  # 30 frames: 4.5 s of model time
    gateway = await start_gateway()
    await start_worker(gateway, model=NAPPING)
    _, body = await submit_photo(http, gateway, gif(numbered(30), fps=10), filename="a.gif")
    seen: list[dict[str, Any]] = []

    async def progressed() -> bool:
        async with http.get(f"{gateway.url}/v1/jobs/{body['job_id']}", headers=gateway.headers()) as response:
            view = await response.json()
        if view["progress"] is not None:
            seen.append(view)
        return view["finished"] or len({v["progress"]["done"] for v in seen}) >= 3

    await eventually(progressed, timeout=30, what="three progress reports")
    done = [view["progress"]["done"] for view in seen]
    assert done == sorted(done) and all(view["progress"]["total"] == 30 for view in seen)
    assert len(set(done)) >= 3, done  # about one a second while the worker is at it
    assert seen[-1]["status_text"] == f"Working on it — frame {done[-1]} of 30"
    job = await wait_finished(http, gateway, body["job_id"])
    assert job["status"] == "done" and job["progress"] is None


async def test_a_clip_never_holds_a_slot_past_its_deadline(
    start_gateway: StartGateway, start_worker: StartWorker, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DETECTBOT_TEST_NAP_S", "0.3")  # 30 frames: 9 s of model time; the deadline is 3 s
    gateway = await start_gateway()
    handle = await start_worker(gateway, model=NAPPING, job_timeout_s=3.0)
    [pid] = handle.worker.pool.pids
    started = time.monotonic()
    _, body = await submit_photo(http, gateway, gif(numbered(30), fps=10), filename="slow.gif")
    job = await wait_finished(http, gateway, body["job_id"])
    assert time.monotonic() - started < 6.0
    assert (job["status"], job["error"]["code"], job["attempts"]) == ("failed", "clip_too_slow", 1)
    assert job["error"]["text"] == "That clip took too long to go through. Please send a shorter one."
    assert handle.worker.pool.pids == [pid]  # it stopped itself: its process was not killed
    _, photo = await submit_photo(http, gateway, jpeg(64, 48))
    assert (await wait_finished(http, gateway, photo["job_id"], timeout=20))["status"] == "done"  # the slot is free


async def test_a_clip_that_crashes_the_model_every_time_is_dead_after_three_deliveries(
    start_gateway: StartGateway, start_worker: StartWorker, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway()
    handle = await start_worker(gateway, model="py:tests.detectors:crash_on_poison")
    poison = gif([np.full((120, 160, 3), POISON_RGB, dtype=np.uint8)] * 10, fps=10)
    _, body = await submit_photo(http, gateway, poison, filename="poison.gif")
    dead = await wait_finished(http, gateway, body["job_id"])
    assert (dead["status"], dead["attempts"], dead["media"]) == ("dead", 3, "clip")
    assert dead["error"]["text"] == texts.text("dead_clip", reason=texts.text("reason_crashed"))
    assert not handle.task.done()  # the worker survived its model's crashes, and goes on
    _, healthy = await submit_photo(http, gateway, gif(numbered(10), fps=10), filename="fine.gif")
    assert (await wait_finished(http, gateway, healthy["job_id"]))["status"] == "done"


async def test_a_clip_waiting_in_line_is_cancelled_like_a_photo(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway()  # no worker: it waits
    _, body = await submit_photo(http, gateway, gif(numbered(10), fps=10), filename="wait.gif")
    async with http.post(f"{gateway.url}/v1/jobs/{body['job_id']}/cancel", json={}, headers=gateway.headers()) as r:
        assert r.status == 200
    job = await wait_finished(http, gateway, body["job_id"], timeout=5)
    assert (job["status"], job["media"], job["result_type"]) == ("cancelled", "clip", None)
