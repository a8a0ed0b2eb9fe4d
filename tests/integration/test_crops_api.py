"""``GET /v1/jobs/{id}/crops`` over HTTP: a ZIP of the objects cut out and its index, with the key that submitted
the photo or the job's signed link; refused for others, before the job is done, and after it was deleted."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Awaitable, Callable

import aiohttp
from PIL import Image

from tests.images import jpeg
from tests.services import OTHER_CLIENT_KEY, GatewayHandle, WorkerHandle, submit_photo, wait_finished

STREET = "py:tests.detectors:street"


async def test_the_objects_as_a_zip_with_their_index_for_the_sender_only(
    gateway: GatewayHandle, start_worker: Callable[..., Awaitable[WorkerHandle]], http: aiohttp.ClientSession
) -> None:
    status, body = await submit_photo(http, gateway, jpeg(640, 480))
    assert status == 202
    async with http.get(f"{gateway.url}/v1/jobs/{body['job_id']}/crops", headers=gateway.headers()) as response:
        assert response.status == 409 and (await response.json())["error"] == "not_ready"
    await start_worker(gateway, model=STREET)
    view = await wait_finished(http, gateway, body["job_id"])
    assert view["crops_url"] and view["crops_url"].split("?")[0].endswith(f"/v1/jobs/{body['job_id']}/crops")

    async with http.get(view["crops_url"], headers={"Accept-Language": "ru"}) as response:  # the signed link
        assert response.status == 200 and response.content_type == "application/zip"
        zipped = zipfile.ZipFile(io.BytesIO(await response.read()))
    index = json.loads(zipped.read("index.json"))
    assert [o["label"] for o in index["objects"]] == ["bus", "person", "person", "person", "person"]
    assert index["objects"][0]["text"] == "автобус 88%" and index["language"] == "ru"
    assert index["too_small"] == 0 and index["more"] == 0 and index["caption"].startswith("5 ")
    assert zipped.namelist() == ["index.json", *[o["file"] for o in index["objects"]]]
    assert Image.open(io.BytesIO(zipped.read(index["objects"][0]["file"]))).width > 400

    other = {"Authorization": f"Bearer {OTHER_CLIENT_KEY}"}
    async with http.get(f"{gateway.url}/v1/jobs/{body['job_id']}/crops", headers=other) as response:
        assert response.status == 404  # another client's key does not even learn the job exists
    async with http.get(
        f"{gateway.url}/v1/jobs/{body['job_id']}/crops?user_id=42", headers=gateway.headers(role="bot")
    ) as response:
        assert response.status == 404  # a bot key only sees its own platforms' jobs (this is an HTTP one)
    async with http.delete(f"{gateway.url}/v1/jobs/{body['job_id']}", headers=gateway.headers()) as response:
        assert response.status == 200
    async with http.get(view["crops_url"]) as response:
        assert response.status == 410 and (await response.json())["error"] == "gone"
