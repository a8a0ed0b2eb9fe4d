"""The spine end to end: HTTP → gateway → RabbitMQ → worker → gateway, with real parts."""

from __future__ import annotations

import io

import aiohttp
from PIL import Image

from tests.conftest import GatewayHandle, submit_photo, wait_finished
from tests.images import jpeg

FIXED = "py:tests.detectors:fixed"


async def test_photo_comes_back_annotated(gateway: GatewayHandle, start_worker, http: aiohttp.ClientSession) -> None:
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
