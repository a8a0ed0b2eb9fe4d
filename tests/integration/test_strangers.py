"""One stranger with no special rights cannot slow, block, fail or rewrite anyone else's work (issue: strangers).

Each test tries what an attacker would, against the real gateway (SQLite and Postgres where it matters), the real
RabbitMQ and a real worker, and checks that only the attacker is refused, with a clear 4xx.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from db import jobs, transitions
from db.models import Blob, Job
from queue_gateway.appkeys import intake_key, longpolls_key, retention_key
from queue_gateway.errors import Unstorable
from queue_gateway.public.contract import DetectParams
from tests.conftest import eventually
from tests.hostile import comment_flood, png_chunk_flood, scan_bomb
from tests.images import jpeg
from tests.services import (
    ADMIN_KEY,
    API_KEY,
    CLIENT_KEY,
    OTHER_CLIENT_KEY,
    GatewayHandle,
    submit_photo,
    wait_finished,
)


async def raw_upload(gateway: GatewayHandle, photo: bytes, header: bytes) -> int:
    """POST a photo with one raw header line, byte for byte (aiohttp's client would encode it); the status."""
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="p.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + photo
        + f"\r\n--{boundary}--\r\n".encode()
    )
    host, port = gateway.server.host, gateway.server.port
    head = (
        (
            f"POST /v1/jobs HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {CLIENT_KEY}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n"
        ).encode()
        + header
        + b"\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head + body)
        await writer.drain()
        status_line = await reader.readline()
        return int(status_line.split()[1])
    finally:
        writer.close()


async def test_a_malformed_idempotency_key_fails_only_its_own_upload(
    start_gateway: Any, database_url: str, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(database_url=database_url, max_per_minute_per_key=1000, max_inflight_per_key=1000)
    for round_ in range(10):
        ordinary = [
            submit_photo(http, gateway, jpeg(64 + n, 48 + round_), headers={"Idempotency-Key": f"ok-{round_}-{n}"})
            for n in range(5)
        ]
        bad = raw_upload(gateway, jpeg(80, 60), b"Idempotency-Key: caf\xe9-\xff\xfe")
        *answers, bad_status = await asyncio.gather(*ordinary, bad)
        assert [status for status, _ in answers] == [202] * 5, answers
        assert bad_status == 400


async def test_a_row_the_database_refuses_fails_only_that_request(start_gateway: Any, database_url: str) -> None:
    """Past every field check, a batch the database refuses is halved until the one request at fault is found."""
    gateway = await start_gateway(database_url=database_url)
    intake = gateway.app[intake_key]

    def new(user_ref: str) -> jobs.NewJob:
        data = jpeg(32, 32)
        return jobs.NewJob(
            id=uuid.uuid4().hex, platform="http", image=data, image_sha256=uuid.uuid4().hex, image_format="JPEG",
            content_type="image/jpeg", width=32, height=32, user_ref=user_ref, owner="attacker",
        )  # fmt: skip

    good = [new(f"http:person-{n}") for n in range(7)]
    poisoned = new("http:\x00\udcff")  # a NUL and an undecodable byte: neither database stores that as text
    batch = [*good[:3], poisoned, *good[3:]]  # submitted at once: one batch, or a few
    answers = await asyncio.gather(*(intake.submit(job) for job in batch), return_exceptions=True)
    refused = answers[3]
    assert isinstance(refused, Unstorable) and refused.http_status == 400
    accepted = [answer for n, answer in enumerate(answers) if n != 3]
    assert all(not isinstance(answer, BaseException) for answer in accepted), accepted
    assert {answer.job_id for answer in accepted} == {job.id for job in good}  # type: ignore[union-attr]


@pytest.mark.parametrize("field", ["origin", "params"])
async def test_fields_with_control_characters_are_refused_before_they_join_a_batch(
    gateway: GatewayHandle, http: aiohttp.ClientSession, field: str
) -> None:
    value = (
        {"platform": "telegram", "chat_id": "42\u0000", "user_id": "7"}
        if field == "origin"
        else {"classes": ["person\u0000"], "language": "en"}
    )
    form = aiohttp.FormData()
    form.add_field("image", jpeg(64, 48), filename="p.jpg", content_type="image/jpeg")
    form.add_field(field, json.dumps(value), content_type="application/json")
    async with http.post(f"{gateway.url}/v1/jobs", data=form, headers=gateway.headers(role="bot")) as response:
        assert response.status == 400
        assert (await response.json())["error"] == f"bad_{field}"


@pytest.mark.parametrize(
    ("upload", "code"),
    [
        (scan_bomb(20_000), "too_complex"),
        (comment_flood(200_000), "too_complex"),
        (png_chunk_flood(100_000), "too_complex"),
    ],
    ids=["a 1 MB scan bomb", "a flood of empty comments", "a flood of PNG chunks"],
)
async def test_uploads_built_to_be_slow_to_decode_are_refused_before_anything_is_stored(
    gateway: GatewayHandle, http: aiohttp.ClientSession, upload: bytes, code: str
) -> None:
    status, body = await submit_photo(http, gateway, upload)
    assert (status, body["error"]) == (422, code), body
    assert "slow to decode" in body["message"]
    async with gateway.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 0


# --- limits for every kind of caller -----------------------------------------------------------------------


async def test_a_client_key_hits_its_limits_like_a_person(start_gateway: Any, http: aiohttp.ClientSession) -> None:
    gateway = await start_gateway(max_inflight_per_key=3, max_per_minute_per_key=5, fair_share_per_key=1)
    answers = [await submit_photo(http, gateway, jpeg(40 + n, 40)) for n in range(4)]
    assert [status for status, _ in answers] == [202, 202, 202, 429]
    assert answers[-1][1]["error"] == "too_many_in_line" and answers[-1][1]["limit"] == 3
    async with gateway.sessions() as session:  # its fair share: one in the broker's queue, the rest held back
        rows = (await session.execute(select(Job.status, Job.held))).all()
    assert sorted(rows) == [("queued", False), ("received", True), ("received", True)]
    other = await submit_photo(http, gateway, jpeg(), headers={"Authorization": f"Bearer {OTHER_CLIENT_KEY}"})
    assert other[0] == 202  # another key is not held up by the first one's limits


async def test_refused_uploads_count_against_the_per_minute_limit(
    start_gateway: Any, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(max_per_minute_per_key=4)
    for _ in range(4):
        status, body = await submit_photo(http, gateway, b"not a photo at all")
        assert (status, body["error"]) == (415, "not_an_image")
    status, body = await submit_photo(http, gateway, jpeg())  # a real photo now: the minute is used up
    assert (status, body["error"]) == (429, "rate_limited")


async def test_a_web_visitor_cannot_reset_their_limits_with_a_new_token(
    start_gateway: Any, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(web_uploads="open", max_inflight_per_user=2, web_sessions_per_minute=50)

    async def new_token() -> dict[str, str]:
        async with http.post(f"{gateway.url}/v1/web/session") as response:
            return {"Authorization": f"Bearer {(await response.json())['token']}"}

    statuses = [(await submit_photo(http, gateway, jpeg(30 + n, 30), headers=await new_token()))[0] for n in range(3)]
    assert statuses == [202, 202, 429]  # three tokens, one visitor: the third photo is over the limit


async def test_behind_a_trusted_proxy_each_visitor_has_their_own_limits(
    start_gateway: Any, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(web_uploads="open", max_inflight_per_user=1, trusted_proxies=["127.0.0.1/32"])
    async with http.post(f"{gateway.url}/v1/web/session") as response:
        token = {"Authorization": f"Bearer {(await response.json())['token']}"}

    async def send_from(address: str, n: int) -> int:
        headers = {**token, "X-Forwarded-For": f"{address}, 127.0.0.1"}
        return (await submit_photo(http, gateway, jpeg(50 + n, 50), headers=headers))[0]

    assert [await send_from("203.0.113.7", 0), await send_from("198.51.100.9", 1)] == [202, 202]
    assert await send_from("203.0.113.7", 2) == 429  # the first visitor again: over their own limit
    untrusted = await start_gateway(web_uploads="open", max_inflight_per_user=1)  # no proxy trusted: one address
    async with http.post(f"{untrusted.url}/v1/web/session") as response:
        other = {"Authorization": f"Bearer {(await response.json())['token']}"}
    first = await submit_photo(http, untrusted, jpeg(), headers={**other, "X-Forwarded-For": "203.0.113.7"})
    second = await submit_photo(http, untrusted, jpeg(61, 61), headers={**other, "X-Forwarded-For": "198.51.100.9"})
    assert (first[0], second[0]) == (202, 429)  # a forged header changes nothing


async def test_long_polls_are_capped_per_client(start_gateway: Any, http: aiohttp.ClientSession) -> None:
    gateway = await start_gateway(max_waiting_polls_per_client=2)
    _, job = await submit_photo(http, gateway, jpeg())  # no worker: it stays in line
    url = f"{gateway.url}/v1/jobs/{job['job_id']}?wait=30"
    holding = [asyncio.create_task(http.get(url, headers=gateway.headers())) for _ in range(2)]
    polls = gateway.app[longpolls_key]

    async def held() -> bool | None:
        return polls.waiting == 2 or None

    await eventually(held, timeout=10, what="two long-polls held")
    async with http.get(url, headers=gateway.headers()) as response:
        assert response.status == 429 and (await response.json())["error"] == "too_many_waiting"
    async with http.get(url, headers={"Authorization": f"Bearer {OTHER_CLIENT_KEY}"}) as response:
        assert response.status == 404  # another client is not capped by the first (and cannot see its job)
    for task in holding:
        task.cancel()
    await asyncio.gather(*holding, return_exceptions=True)


async def test_a_silent_or_slow_connection_is_closed(start_gateway: Any) -> None:
    gateway = await start_gateway(keepalive_timeout_s=1, upload_timeout_s=1)
    host, port = gateway.server.host, gateway.server.port
    idle = await asyncio.open_connection(host, port)
    assert await asyncio.wait_for(idle[0].read(), 10) == b""  # closed by the server, well before a minute
    idle[1].close()
    reader, writer = await asyncio.open_connection(host, port)  # headers, then a body that never comes
    writer.write(
        f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CLIENT_KEY}\r\n"
        "Content-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n\xff\xd8".encode("latin-1")
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    assert status_line.split()[1] == b"408"
    writer.close()


# --- least privilege -------------------------------------------------------------------------------------


async def submit_as_bot(
    http: aiohttp.ClientSession, gateway: GatewayHandle, origin: dict[str, str], key: str = API_KEY
) -> tuple[int, dict[str, Any]]:
    form = aiohttp.FormData()
    form.add_field("image", jpeg(), filename="p.jpg", content_type="image/jpeg")
    form.add_field("origin", json.dumps(origin), content_type="application/json")
    async with http.post(f"{gateway.url}/v1/jobs", data=form, headers={"Authorization": f"Bearer {key}"}) as response:
        return response.status, await response.json()


async def test_a_bot_key_acts_only_for_its_own_platform(start_gateway: Any, http: aiohttp.ClientSession) -> None:
    telegram_key, discord_key = "telegram-bot-key-0123456789", "discord-bot-key-0123456789"
    gateway = await start_gateway(
        api_keys=[SecretStr(f"telegram:{telegram_key}"), SecretStr(f"discord:{discord_key}"), SecretStr(CLIENT_KEY),
                  SecretStr(f"admin:{ADMIN_KEY}")]
    )  # fmt: skip
    tg = {"platform": "telegram", "chat_id": "77", "user_id": "77"}
    dc = {"platform": "discord", "channel_id": "88", "user_id": "88", "application_id": "1"}
    assert (await submit_as_bot(http, gateway, dc, telegram_key))[0] == 403  # may not message Discord chats
    _, tg_job = await submit_as_bot(http, gateway, tg, telegram_key)
    _, dc_job = await submit_as_bot(http, gateway, dc, discord_key)
    _, client_job = await submit_photo(http, gateway, jpeg())

    def as_(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    for job in (dc_job, client_job):  # another platform's job, an HTTP client's job: not there for this key
        for method, path in [("GET", ""), ("GET", "/result"), ("POST", "/requeue"), ("POST", "/cancel")]:
            async with http.request(method, f"{gateway.url}/v1/jobs/{job['job_id']}{path}", headers=as_(telegram_key),
                                    json={}) as response:  # fmt: skip
                assert response.status == 404, (job, method, path)
        async with http.post(f"{gateway.url}/v1/jobs/{job['job_id']}/status-message", headers=as_(telegram_key),
                             json={"message_id": "9"}) as response:  # fmt: skip
            assert response.status == 404
        async with gateway.sessions() as session:  # and nothing was written to it
            assert (await session.get(Job, job["job_id"])).status_message_id is None  # type: ignore[union-attr]
    async with http.get(f"{gateway.url}/v1/jobs/{tg_job['job_id']}", headers=as_(telegram_key)) as response:
        assert response.status == 200
    for method, path, body in [
        ("POST", "/v1/forget", {"platform": "discord", "user_id": "88"}),
        ("GET", "/v1/chats/discord/88/settings", None),
        ("PATCH", "/v1/chats/discord/88/settings", {"conf": 0.9}),
        ("PATCH", "/v1/people/discord/88/settings", {"conf": 0.9}),
    ]:
        async with http.request(method, f"{gateway.url}{path}", headers=as_(telegram_key), json=body) as response:
            assert response.status == 403, (method, path)
    async with gateway.sessions.begin() as session:  # both chat jobs die; each bot lists only its own
        for job in (tg_job, dc_job):
            await transitions.mark_dead(session, job["job_id"], reason="test")
    async with http.get(f"{gateway.url}/v1/dead-jobs", headers=as_(telegram_key)) as response:
        assert [j["job_id"] for j in (await response.json())["jobs"]] == [tg_job["job_id"]]
    async with http.get(f"{gateway.url}/v1/dead-jobs", headers=as_(ADMIN_KEY)) as response:
        assert {j["job_id"] for j in (await response.json())["jobs"]} == {tg_job["job_id"], dc_job["job_id"]}


async def test_worker_links_die_on_requeue_and_repeated_fetches_are_one_attempt(
    gateway: GatewayHandle, http: aiohttp.ClientSession
) -> None:
    _, job = await submit_photo(http, gateway, jpeg())
    job_id = job["job_id"]
    publisher = gateway.app[intake_key]._publisher  # the links exactly as a worker gets them
    message = publisher.message_for(job_id, DetectParams())
    worker = {"X-Detectbot-Worker": "w", "X-Detectbot-Delivery": "1"}
    for _ in range(5):  # a retried fetch (or someone replaying the link) is the same attempt
        async with http.get(f"{gateway.url}{message.input_url}", headers=worker) as response:
            assert response.status == 200
    async with gateway.sessions() as session:
        row = await session.get(Job, job_id)
        assert row is not None and (row.status, row.attempts) == ("processing", 1)
    async with gateway.sessions.begin() as session:
        await transitions.mark_dead(session, job_id, reason="test")
    async with http.post(f"{gateway.url}/v1/jobs/{job_id}/requeue", headers=gateway.headers(admin=True)) as response:
        assert response.status == 202
    async with http.get(f"{gateway.url}{message.input_url}", headers=worker) as response:
        assert response.status == 410  # the old attempt's links find nothing left to do
    fresh = publisher.message_for(job_id, DetectParams(), link_gen=1)
    async with http.get(f"{gateway.url}{fresh.input_url}", headers=worker) as response:
        assert response.status == 200


async def test_view_links_have_a_fixed_lifetime(start_gateway: Any, http: aiohttp.ClientSession) -> None:
    gateway = await start_gateway(view_link_ttl_s=3600)
    _, job = await submit_photo(http, gateway, jpeg())
    links = set()
    for _ in range(3):  # reading the status again hands out the same link, never a longer-lived one
        async with http.get(job["status_url"]) as response:
            links.add((await response.json())["status_url"])
    assert links == {job["status_url"]}
    expires = int(job["status_url"].split("exp=")[1].split("&")[0])
    assert abs(expires - (time.time() + 3600)) < 60


# --- privacy -------------------------------------------------------------------------------------------------


async def test_a_client_deletes_its_own_job_and_nobody_else_can(
    gateway: GatewayHandle, http: aiohttp.ClientSession
) -> None:
    _, job = await submit_photo(http, gateway, jpeg())
    url = f"{gateway.url}/v1/jobs/{job['job_id']}"
    async with http.delete(url, headers={"Authorization": f"Bearer {OTHER_CLIENT_KEY}"}) as response:
        assert response.status == 404
    async with http.delete(url, headers=gateway.headers()) as response:
        assert response.status == 200
    async with http.get(job["result_url"]) as response:
        assert response.status == 410
    async with gateway.sessions() as session:
        row = await session.get(Job, job["job_id"])
        assert row is not None and row.status == "failed" and row.image_sha256 == ""
        assert await session.scalar(select(func.count()).select_from(Blob)) == 0


async def test_the_result_cache_never_answers_one_person_from_anothers_photo(
    gateway: GatewayHandle, start_worker: Any, http: aiohttp.ClientSession
) -> None:
    await start_worker(gateway, model="py:tests.detectors:fixed")
    photo = jpeg(123, 77)
    _, first = await submit_photo(http, gateway, photo)
    await wait_finished(http, gateway, first["job_id"])
    stranger = {"Authorization": f"Bearer {OTHER_CLIENT_KEY}"}
    _, theirs = await submit_photo(http, gateway, photo, headers=stranger)
    assert theirs["status"] != "done"  # the same photo from someone else is not answered from the first one's
    _, again = await submit_photo(http, gateway, photo)
    assert again["status"] == "done"  # the first sender's own repeat still is


async def test_retention_leaves_nothing_that_names_a_person(
    gateway: GatewayHandle, http: aiohttp.ClientSession
) -> None:
    origin = {"platform": "telegram", "chat_id": "-100555", "user_id": "555", "message_id": "9"}
    form = aiohttp.FormData()
    form.add_field("image", jpeg(), filename="p.jpg", content_type="image/jpeg")
    form.add_field("origin", json.dumps(origin), content_type="application/json")
    headers = {**gateway.headers(role="bot"), "Idempotency-Key": "telegram:-100555:9"}
    async with http.post(f"{gateway.url}/v1/jobs", data=form, headers=headers) as response:
        job_id = (await response.json())["job_id"]
    async with gateway.sessions.begin() as session:
        await transitions.fail(session, job_id, code="bad_image", message="test")
        row = await session.get(Job, job_id)
        assert row is not None
        row.received_at -= 8 * 86400
    assert await gateway.app[retention_key].purge_once() == 1  # the photo goes after RETENTION_DAYS …
    async with gateway.sessions() as session:
        row = await session.get(Job, job_id)
        assert row is not None and row.purged_at is not None and row.user_ref == "telegram:555"  # … /history stays
        assert await session.scalar(select(func.count()).select_from(Blob).where(Blob.job_id == job_id)) == 0
        assert row.idempotency_key is None and row.traceparent is None
    async with gateway.sessions.begin() as session:
        row = await session.get(Job, job_id)
        assert row is not None
        row.received_at -= 23 * 86400  # thirty-one days old: past HISTORY_DAYS too
    assert await gateway.app[retention_key].purge_once() == 1
    async with gateway.sessions() as session:
        row = await session.get(Job, job_id)
        assert row is not None
        named = ("origin", "user_ref", "idempotency_key", "group_key", "status_message_id", "delivery_receipt")
        kept = {column: getattr(row, column) for column in (*named, "image_sha256")}
        assert kept == dict.fromkeys(kept, None) | {"image_sha256": ""}
        texts_of_row = {c.name: getattr(row, c.name) for c in Job.__table__.columns if c.name != "id"
                        and not isinstance(getattr(row, c.name), float)}  # timestamps may hold any digits  # fmt: skip
        assert "555" not in json.dumps(texts_of_row, default=str)
