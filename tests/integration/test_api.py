"""The gateway's HTTP API: authentication, idempotency, capability URLs and input validation."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import time
import zlib
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from PIL import Image
from sqlalchemy import func, select

from db.models import Blob, Job
from queue_gateway.signing import Action, Signer
from tests.images import jpeg
from tests.services import SIGNING_SECRET, GatewayHandle, submit_photo

StartGateway = Callable[..., Awaitable[GatewayHandle]]


async def count_rows(gateway: GatewayHandle) -> tuple[int, int, int]:
    """(jobs, stored images, jobs not yet confirmed by the broker)."""
    async with gateway.sessions() as session:
        jobs = await session.scalar(select(func.count()).select_from(Job))
        blobs = await session.scalar(select(func.count()).select_from(Blob))
        unpublished = await session.scalar(select(func.count()).select_from(Job).where(Job.status == "received"))
    return int(jobs or 0), int(blobs or 0), int(unpublished or 0)


async def test_api_key_required(gateway: GatewayHandle, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{gateway.url}/v1/jobs", data=jpeg()) as response:
        assert response.status == 401
        assert (await response.json())["error"] == "unauthorized"
    async with http.post(f"{gateway.url}/v1/jobs", data=jpeg(), headers={"Authorization": "Bearer nope"}) as response:
        assert response.status == 401
    assert await count_rows(gateway) == (0, 0, 0)


async def test_raw_body_upload_is_accepted(gateway: GatewayHandle, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{gateway.url}/v1/jobs", data=jpeg(), headers=gateway.headers()) as response:
        assert response.status == 202
        assert (await response.json())["status"] == "queued"


async def test_same_idempotency_key_gives_one_job(
    start_gateway: StartGateway, database_url: str, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(database_url=database_url)
    key = {"Idempotency-Key": "upload-42"}
    first_status, first = await submit_photo(http, gateway, jpeg(), headers=key)
    second_status, second = await submit_photo(http, gateway, jpeg(colour=(1, 2, 3)), headers=key)
    assert (first_status, second_status) == (202, 200)
    assert second["job_id"] == first["job_id"]
    assert second["duplicate"] is True
    assert (await count_rows(gateway))[0] == 1
    _, third = await submit_photo(http, gateway, jpeg(), headers={"Idempotency-Key": "upload-43"})
    assert third["job_id"] != first["job_id"]


def bomb_png(side: int = 20_000) -> bytes:
    """A valid 1-bit PNG of side x side pixels that compresses to a few kilobytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(buffer, "GIF")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "payload", "status", "code"),
    [
        ("empty", b"", 400, "empty"),
        ("text renamed .jpg", b"hello, this is not a photo\n" * 10, 415, "not_an_image"),
        ("truncated JPEG", jpeg(800, 600)[:3000], 400, "corrupt"),
        ("20000x20000 PNG bomb", bomb_png(), 413, "too_many_pixels"),
        ("GIF", gif(), 415, "unsupported_format"),
        ("over the byte cap", jpeg(64, 64) + b"\x00" * 300_000, 413, "too_large"),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_kept(
    start_gateway: StartGateway, http: aiohttp.ClientSession, name: str, payload: bytes, status: int, code: str
) -> None:
    gateway = await start_gateway(max_upload_bytes=200_000)
    answer_status, body = await submit_photo(http, gateway, payload, filename="photo.jpg")
    assert answer_status == status, (name, body)
    assert body["error"] == code
    assert body["message"].endswith(".") and len(body["message"]) < 200  # a sentence for a person
    assert await count_rows(gateway) == (0, 0, 0)


async def test_bad_params_are_refused(gateway: GatewayHandle, http: aiohttp.ClientSession) -> None:
    status, body = await submit_photo(http, gateway, jpeg(), params={"conf": 7})
    assert status == 400
    assert body["error"] == "bad_params"
    assert await count_rows(gateway) == (0, 0, 0)


def signed(gateway: GatewayHandle, action: Action, job_id: str, *, expires: int | None = None, gen: int = 0) -> str:
    """A signed link as the gateway hands it out: a worker link is signed for the job's link generation too."""
    signer = Signer(SIGNING_SECRET.encode())
    expires = expires or int(time.time()) + 600
    path = {Action.INPUT: "worker/jobs/{id}/input", Action.RESULT: "worker/jobs/{id}/result", Action.VIEW: "jobs/{id}"}
    url = f"{gateway.url}/v1/{path[action].format(id=job_id)}?"
    if action is Action.VIEW:
        return url + f"exp={expires}&sig={signer.sign(action, job_id, expires)}"
    return url + f"gen={gen}&exp={expires}&sig={signer.sign(action, f'{job_id}.{gen}', expires)}"


async def test_signed_urls_reject_forgery_alteration_and_expiry(
    gateway: GatewayHandle, http: aiohttp.ClientSession
) -> None:
    _, first = await submit_photo(http, gateway, jpeg())
    _, second = await submit_photo(http, gateway, jpeg())
    job_id = first["job_id"]
    good = signed(gateway, Action.INPUT, job_id)
    forged = good.rsplit("sig=", 1)[0] + "sig=" + "A" * 43
    other_job = good.replace(job_id, second["job_id"])  # a valid signature, moved to another job
    later = good.replace("exp=", "exp=9")  # expiry pushed into the future by hand
    expired = signed(gateway, Action.INPUT, job_id, expires=int(time.time()) - 5)
    wrong_action = (
        signed(gateway, Action.VIEW, job_id)
        .replace(f"/v1/jobs/{job_id}", f"/v1/worker/jobs/{job_id}/input")
        .replace("?", "?gen=0&")
    )
    stale = signed(gateway, Action.INPUT, job_id, gen=1)  # a generation the job does not have (yet)
    # an expired worker link finds nothing left to do: a job that waits that long is sent again with new links
    for url, status in [
        (forged, 403),
        (other_job, 403),
        (later, 403),
        (expired, 410),
        (wrong_action, 403),
        (stale, 410),
    ]:
        async with http.get(url) as response:
            assert response.status == status, url
    unsigned = good.split("?")[0]
    async with http.get(unsigned) as response:
        assert response.status == 401
    async with http.get(good) as response:  # the genuine link works
        assert response.status == 200
    # the view links handed out at submission work, altered ones do not
    async with http.get(first["status_url"]) as response:
        assert response.status == 200
    async with http.get(first["status_url"].replace(job_id, second["job_id"])) as response:
        assert response.status == 403


async def test_repeated_result_upload_changes_nothing(
    start_gateway: StartGateway, database_url: str, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(database_url=database_url)
    _, submitted = await submit_photo(http, gateway, jpeg())
    job_id = submitted["job_id"]
    async with http.get(signed(gateway, Action.INPUT, job_id), headers={"X-Detectbot-Worker": "w1"}) as response:
        assert response.status == 200

    async def post(label: str) -> dict[str, object]:
        form = aiohttp.FormData()
        meta = {
            "ok": True,
            "worker": "w1",
            "model": "m",
            "inference_ms": 5.0,
            "detections": [{"class_id": 0, "label": label, "confidence": 0.9, "box": [1, 2, 3, 4]}],
        }
        form.add_field("meta", json.dumps(meta), content_type="application/json")
        form.add_field("image", jpeg(32, 32), filename="r.jpg", content_type="image/jpeg")
        async with http.post(signed(gateway, Action.RESULT, job_id), data=form) as response:
            assert response.status == 200
            body: dict[str, object] = await response.json()
            return body

    assert (await post("person"))["outcome"] == "applied"
    async with gateway.sessions() as session:
        before = await session.get(Job, job_id)
    assert (await post("dog"))["outcome"] == "repeated"
    async with gateway.sessions() as session:
        after = await session.get(Job, job_id)
        results = await session.scalar(select(func.count()).select_from(Blob).where(Blob.kind == "result"))
    assert before is not None and after is not None
    assert after.detections == before.detections and after.detections[0]["label"] == "person"
    assert after.done_at == before.done_at
    assert results == 1
    # and a late input fetch for a finished job is told there is nothing to do
    async with http.get(signed(gateway, Action.INPUT, job_id)) as response:
        assert response.status == 410


async def test_health_and_readiness(start_gateway: StartGateway, http: aiohttp.ClientSession) -> None:
    gateway = await start_gateway()
    async with http.get(f"{gateway.url}/healthz") as response:
        assert response.status == 200
    async with http.get(f"{gateway.url}/readyz", headers=gateway.headers(admin=True)) as response:
        assert response.status == 200
        assert (await response.json())["checks"] == {"database": "ok", "broker": "ok"}
    cut_off = await start_gateway(amqp_url="amqp://guest:guest@127.0.0.1:1/")
    async with http.get(f"{cut_off.url}/readyz", headers=cut_off.headers(admin=True)) as response:
        assert response.status == 503
        assert (await response.json())["checks"]["broker"].startswith("error")
    for headers in ({}, cut_off.headers(), cut_off.headers(role="bot")):  # the details are for admins only
        async with http.get(f"{cut_off.url}/readyz", headers=headers) as response:
            assert (response.status, await response.json()) == (503, {"status": "not ready", "checks": None})


async def test_openapi_documents_every_route(gateway: GatewayHandle, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{gateway.url}/v1/openapi.json") as response:
        assert response.status == 200
        document = await response.json()
    assert document["openapi"] == "3.1.0"
    assert {"SubmitResponse", "ErrorBody", "DetectParams", "Origin", "ResultMeta"} <= set(
        document["components"]["schemas"]
    )
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in gateway.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    documented = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert served == documented


async def test_concurrent_submissions_are_group_committed_correctly(
    start_gateway: StartGateway, database_url: str, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(database_url=database_url, fair_share_per_key=40)  # not about fairness here
    answers = await asyncio.gather(*(submit_photo(http, gateway, jpeg(64, 64)) for _ in range(40)))
    assert [status for status, _ in answers] == [202] * 40
    assert sorted(body["position"] for _, body in answers) == list(range(1, 41))  # one place in line each
    assert {body["status"] for _, body in answers} == {"queued"}
    assert await count_rows(gateway) == (40, 40, 0)  # jobs, images; every one confirmed by the broker
    # the same key sent concurrently (in one batch) still makes one job
    same = await asyncio.gather(
        *(submit_photo(http, gateway, jpeg(64, 64), headers={"Idempotency-Key": "burst"}) for _ in range(8))
    )
    assert len({body["job_id"] for _, body in same}) == 1
    assert sorted(status for status, _ in same) == [200] * 7 + [202]
    assert (await count_rows(gateway))[0] == 41
