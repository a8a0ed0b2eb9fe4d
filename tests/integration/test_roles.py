"""Key roles end to end: what a client, a bot and an admin key may do at the gateway (least privilege)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from pydantic import SecretStr
from sqlalchemy import func, select

from db.models import Job
from tests.fakes.telegram_api import FakeTelegram
from tests.images import jpeg
from tests.services import ADMIN_KEY, API_KEY, CLIENT_KEY, OTHER_CLIENT_KEY, GatewayHandle, submit_photo

ORIGIN = {"platform": "telegram", "chat_id": "4242", "user_id": "4242", "message_id": "7"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def call(http: aiohttp.ClientSession, method: str, url: str, key: str, **kwargs: Any) -> tuple[int, Any]:
    async with http.request(method, url, headers=bearer(key), **kwargs) as response:
        body = await response.read()
        try:
            return response.status, json.loads(body)
        except ValueError:
            return response.status, body


async def submit_with_origin(http: aiohttp.ClientSession, gateway: GatewayHandle, key: str) -> tuple[int, Any]:
    form = aiohttp.FormData()
    form.add_field("image", jpeg(), filename="p.jpg")
    form.add_field("origin", json.dumps(ORIGIN), content_type="application/json")
    return await call(http, "POST", f"{gateway.url}/v1/jobs", key, data=form)


async def test_a_client_key_cannot_make_the_gateway_message_a_chat(
    start_gateway, fake_telegram: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(
        telegram_token=SecretStr(fake_telegram.token),
        telegram_api_url=fake_telegram.base_url,
        telegram_file_url=fake_telegram.base_file_url,
    )
    status, body = await submit_with_origin(http, gateway, CLIENT_KEY)
    assert status == 403 and body["error"] == "forbidden"
    async with gateway.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 0
    # a bot key may: the job is stored with its chat
    status, _ = await submit_with_origin(http, gateway, API_KEY)
    assert status == 202
    assert [c for c in fake_telegram.calls if c.method.startswith("send")] == []  # nothing went to the chat


async def test_a_client_reads_only_its_own_jobs(gateway: GatewayHandle, http: aiohttp.ClientSession) -> None:
    _, mine = await submit_photo(http, gateway, jpeg())
    job = mine["job_id"]
    for path in (f"/v1/jobs/{job}", f"/v1/jobs/{job}/result"):
        status, body = await call(http, "GET", f"{gateway.url}{path}", OTHER_CLIENT_KEY)
        assert (status, body["error"]) == (404, "not_found"), path
    status, _ = await call(http, "POST", f"{gateway.url}/v1/jobs/{job}/cancel", OTHER_CLIENT_KEY, json={})
    assert status == 404
    status, body = await call(http, "GET", f"{gateway.url}/v1/jobs/{job}", CLIENT_KEY)
    assert status == 200 and body["job_id"] == job
    status, _ = await call(http, "GET", f"{gateway.url}/v1/jobs/{job}", ADMIN_KEY)  # an admin sees every job
    assert status == 200
    for path in (f"/v1/jobs/{job}", f"/v1/jobs/{job}/result"):  # a bot key only its own platform's chat jobs
        status, body = await call(http, "GET", f"{gateway.url}{path}", API_KEY)
        assert (status, body["error"]) == (404, "not_found"), path
    # the signed link handed out at submission works without any key
    async with http.get(mine["status_url"]) as response:
        assert response.status == 200


async def test_a_client_key_may_not_do_what_a_bot_does(gateway: GatewayHandle, http: aiohttp.ClientSession) -> None:
    _, mine = await submit_photo(http, gateway, jpeg())
    job = mine["job_id"]
    for method, path, payload in [
        ("POST", f"/v1/jobs/{job}/status-message", {"message_id": "9"}),
        ("POST", "/v1/forget", {"platform": "telegram", "user_id": "4242"}),
        ("GET", "/v1/stats", None),
        ("GET", "/v1/stats/chart.png", None),
        ("GET", "/v1/dead-jobs", None),
        ("POST", f"/v1/jobs/{job}/requeue", None),
        ("GET", "/v1/chats/telegram/4242/settings", None),
        ("PATCH", "/v1/chats/telegram/4242/settings", {"conf": 0.5}),
    ]:
        status, body = await call(http, method, f"{gateway.url}{path}", CLIENT_KEY, json=payload)
        assert (status, body["error"]) == (403, "forbidden"), (method, path)


async def test_a_bot_key_may_do_what_its_bot_needs(gateway: GatewayHandle, http: aiohttp.ClientSession) -> None:
    status, submitted = await submit_with_origin(http, gateway, API_KEY)
    assert status == 202
    job = submitted["job_id"]
    checks = [
        ("POST", f"/v1/jobs/{job}/status-message", {"message_id": "9"}, 200),
        ("GET", "/v1/stats", None, 200),
        ("GET", "/v1/stats/chart.png", None, 200),
        ("GET", "/v1/dead-jobs", None, 200),
        ("POST", f"/v1/jobs/{job}/requeue", None, 409),  # allowed, but the job is not dead
        ("PATCH", "/v1/chats/telegram/4242/settings", {"conf": 0.5}, 200),
        ("GET", "/v1/chats/telegram/4242/settings", None, 200),
    ]
    for method, path, payload, expected in checks:
        status, _ = await call(http, method, f"{gateway.url}{path}", API_KEY, json=payload)
        assert status == expected, (method, path)
    status, body = await call(http, "GET", f"{gateway.url}/v1/chats/telegram/4242/settings", API_KEY)
    assert {k: v for k, v in body.items() if v is not None} == {"conf": 0.5}
    status, _ = await call(
        http, "POST", f"{gateway.url}/v1/forget", API_KEY, json={"platform": "telegram", "user_id": "4242"}
    )
    assert status == 200
    status, body = await call(http, "GET", f"{gateway.url}/v1/chats/telegram/4242/settings", API_KEY)
    assert set(body.values()) == {None}  # a private chat is its person's: /forget leaves nothing of theirs


async def test_only_the_sender_may_cancel_a_chat_photo(gateway: GatewayHandle, http: aiohttp.ClientSession) -> None:
    _, submitted = await submit_with_origin(http, gateway, API_KEY)
    url = f"{gateway.url}/v1/jobs/{submitted['job_id']}/cancel"
    status, body = await call(http, "POST", url, API_KEY, json={"user_id": "9999"})
    assert (status, body["error"]) == (403, "not_yours")
    status, body = await call(http, "POST", url, API_KEY, json={"user_id": "4242"})
    assert status == 200 and body["status"] == "cancelled"
    status, body = await call(http, "POST", url, API_KEY, json={"user_id": "4242"})
    assert (status, body["error"]) == (409, "too_late")
