"""The spine end to end: HTTP → gateway → RabbitMQ → worker → gateway, with real parts."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
from PIL import Image
from sqlalchemy import event

from queue_gateway.appkeys import database_key
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


async def test_a_photo_new_to_the_blob_store_is_not_looked_up_in_the_result_cache(
    gateway: GatewayHandle, start_worker, http: aiohttp.ClientSession
) -> None:
    await start_worker(gateway, model=FIXED)
    looked_up: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "jobs.image_sha256" in statement and "JOIN blobs" in statement:
            looked_up.append(statement)

    engine = gateway.app[database_key].sessions.kw["bind"].sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        photo = jpeg(210, 110)
        _, first = await submit_photo(http, gateway, photo)
        assert first["status"] == "queued" and looked_up == []  # bytes never seen: no earlier job can have them
        assert (await wait_finished(http, gateway, first["job_id"]))["status"] == "done"
        _, again = await submit_photo(http, gateway, photo)
        assert again["status"] == "done" and len(looked_up) == 1  # seen before: asked, and answered from it
    finally:
        event.remove(engine, "before_cursor_execute", seen)


async def _true(value: bool) -> bool:
    return value
