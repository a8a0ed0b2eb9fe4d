"""The spine end to end: HTTP → gateway → RabbitMQ → worker → gateway, with real parts."""

from __future__ import annotations

import io

import aiohttp
from PIL import Image

from tests.conftest import eventually
from tests.images import jpeg
from tests.services import GatewayHandle, submit_photo, wait_finished

FIXED = "py:tests.detectors:fixed"


async def test_photo_comes_back_annotated(
    start_gateway, database_url: str, start_worker, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(database_url=database_url)
    await start_worker(gateway, model=FIXED)
    status, body = await submit_photo(http, gateway, jpeg(640, 480))
    assert status == 202, body
    assert set(body) >= {"job_id", "status", "position", "status_url", "result_url"}
    job = await wait_finished(http, gateway, body["job_id"])
    assert job["status"] == "done"
    assert [d["label"] for d in job["detections"]] == ["person", "bus"]
    assert job["caption"] == "1 bus, 1 person"
    assert job["attempts"] == 1
    stamps = job["timestamps"]
    assert stamps["received"] <= stamps["queued"] <= stamps["processing"] <= stamps["done"]
    # the signed result URL works without the API key
    async with http.get(body["result_url"]) as response:
        assert response.status == 200
        assert response.content_type == "image/jpeg"
        annotated = Image.open(io.BytesIO(await response.read()))
        assert annotated.size == (640, 480)


async def test_same_photo_again_is_answered_from_the_cache(
    gateway: GatewayHandle, start_worker, http: aiohttp.ClientSession
) -> None:
    handle = await start_worker(gateway, model=FIXED)
    photo = jpeg(200, 100)
    _, first = await submit_photo(http, gateway, photo)
    assert (await wait_finished(http, gateway, first["job_id"]))["status"] == "done"
    status, again = await submit_photo(http, gateway, photo)
    assert status == 202 and again["status"] == "done" and again["position"] == 0
    job = await wait_finished(http, gateway, again["job_id"], timeout=5)
    assert job["cache_hit"] is True and job["attempts"] == 0
    assert job["detections"] == (await wait_finished(http, gateway, first["job_id"]))["detections"]
    await eventually(lambda: _true(handle.worker.processed == 1), what="the worker to ack the first job")
    # other parameters are another question: that one goes to the worker
    _, stricter = await submit_photo(http, gateway, photo, params={"conf": 0.7})
    assert [d["label"] for d in (await wait_finished(http, gateway, stricter["job_id"]))["detections"]] == ["person"]
    await eventually(lambda: _true(handle.worker.processed == 2), what="the worker to ack the second job")
    assert handle.worker.processed == 2  # the cached answer never reached the worker


async def _true(value: bool) -> bool:
    return value
