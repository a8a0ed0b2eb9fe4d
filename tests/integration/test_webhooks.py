"""Completion webhooks end to end: a real receiver on loopback, a real gateway (in this process, or a process of
its own that is killed), real workers; every event verified the way a receiver does it, with the
``standardwebhooks`` package.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook as Verifier

from db.engine import sqlite_url
from db.models import Job
from tests.conftest import eventually
from tests.images import jpeg
from tests.nodes import free_port
from tests.services import (
    ADMIN_KEY,
    AMQP_URL,
    API_KEY,
    CLIENT_KEY,
    SIGNING_SECRET,
    WEBHOOK_SECRET,
    GatewayHandle,
    WorkerHandle,
)

FIXED = "py:tests.detectors:fixed"
HOOKS = {"webhook_secret": WEBHOOK_SECRET, "webhook_allow_private": True, "webhook_backoff_s": 0.3}
HANG = -1  # an answer a receiver never gives


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        """The event, once its signature holds (raises otherwise), as a receiver reads it."""
        event: dict[str, Any] = Verifier(WEBHOOK_SECRET).verify(self.body, self.headers)
        return event


@dataclass
class Receiver:
    """A webhook receiver on loopback: answers each request with the next of ``answers`` (then 200; HANG: never)."""

    answers: list[int] = field(default_factory=list)
    got: list[Received] = field(default_factory=list)
    runner: web.AppRunner | None = None
    port: int = 0

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, handler_cancellation=True)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self.runner.addresses[0][1])
        return self

    def url(self, host: str = "127.0.0.1", path: str = "/hooks/detectbot?token=abc") -> str:
        return f"http://{host}:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.Response:
        self.got.append(Received(dict(request.headers), await request.read()))
        status = self.answers.pop(0) if self.answers else 200
        if status == HANG:
            await asyncio.Event().wait()
        return web.Response(status=status, text="ok" if status < 300 else "no")

    async def received(self, count: int, *, timeout: float = 30) -> list[Received]:
        async def enough() -> list[Received] | None:
            return self.got if len(self.got) >= count else None

        return await eventually(enough, timeout=timeout, what=f"{count} webhook request(s)")

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def receivers() -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    started: list[Receiver] = []

    async def start(*answers: int) -> Receiver:
        receiver = await Receiver(list(answers)).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        await receiver.close()


async def submit(
    http: aiohttp.ClientSession, base: str, webhook_url: str | None, *, raw: bool = False
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    if raw:  # a raw-body upload names its webhook in the query
        url = f"{base}/v1/jobs" + (f"?webhook_url={aiohttp.helpers.quote(webhook_url, safe='')}" if webhook_url else "")
        async with http.post(url, data=jpeg(), headers=headers | {"Content-Type": "image/jpeg"}) as response:
            return response.status, await response.json()
    form = aiohttp.FormData()
    form.add_field("image", jpeg(), filename="photo.jpg", content_type="image/jpeg")
    if webhook_url is not None:
        form.add_field("webhook_url", webhook_url)
    async with http.post(f"{base}/v1/jobs", data=form, headers=headers) as response:
        return response.status, await response.json()


async def job_view(http: aiohttp.ClientSession, base: str, job_id: str) -> dict[str, Any]:
    async with http.get(f"{base}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {CLIENT_KEY}"}) as response:
        assert response.status == 200
        view: dict[str, Any] = await response.json()
        return view


async def test_a_receiver_that_fails_twice_gets_one_signed_event_three_times_equal_to_the_job_view(
    start_gateway: Callable[..., Awaitable[GatewayHandle]],
    start_worker: Callable[..., Awaitable[WorkerHandle]],
    receivers: Callable[..., Awaitable[Receiver]],
    http: aiohttp.ClientSession,
) -> None:
    receiver = await receivers(500, 500, 200)
    gateway = await start_gateway(**HOOKS)
    await start_worker(gateway, model=FIXED)
    status, body = await submit(http, gateway.url, receiver.url())
    assert status == 202, body
    tries = await receiver.received(3)
    assert (
        len({t.headers["webhook-id"] for t in tries}) == 1 and tries[0].headers["webhook-id"] == f"msg_{body['job_id']}"
    )
    events = [t.event for t in tries]  # each signature checked by the standardwebhooks package
    assert all(e["type"] == "job.finished" and e["data"]["job_id"] == body["job_id"] for e in events)
    assert events[0]["timestamp"].endswith("Z") and events[0] == events[2]  # the same event each time
    view = await eventually(
        lambda: _delivered(http, gateway.url, body["job_id"]), what="the webhook recorded as delivered"
    )
    assert view["webhook"] | {"next_attempt_at": None} == {
        "url": receiver.url(), "state": "delivered", "attempts": 3, "event_id": f"msg_{body['job_id']}",
        "last_status": 200, "next_attempt_at": None, "delivered_at": view["webhook"]["delivered_at"],
    }  # fmt: skip
    assert events[2]["data"] == {k: v for k, v in view.items() if k != "webhook"}  # exactly GET /v1/jobs/{id}
    assert view["status"] == "done" and view["detections"]

    status, raw = await submit(http, gateway.url, receiver.url(path="/raw"), raw=True)  # the query form
    assert status == 202, raw
    (fourth,) = (await receiver.received(4))[3:]
    assert fourth.event["data"]["job_id"] == raw["job_id"]

    async with http.get(f"{gateway.url}/metrics", headers=gateway.headers(admin=True)) as response:
        metrics = await response.text()
    assert 'detectbot_webhook_deliveries_total{outcome="retry"} 2.0' in metrics
    assert 'detectbot_webhook_deliveries_total{outcome="delivered"} 2.0' in metrics


async def _delivered(http: aiohttp.ClientSession, base: str, job_id: str) -> dict[str, Any] | None:
    view = await job_view(http, base, job_id)
    return view if (view.get("webhook") or {}).get("state") == "delivered" else None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://localhost:9/hook",  # a name that resolves to loopback
        "ftp://example.com/hook",
        "http://user:password@example.com/hook",
        "not a url",
    ],
)
async def test_a_webhook_url_to_a_private_or_odd_place_is_refused(
    start_gateway: Callable[..., Awaitable[GatewayHandle]], http: aiohttp.ClientSession, url: str
) -> None:
    gateway = await start_gateway(webhook_secret=WEBHOOK_SECRET)
    for raw in (False, True):
        status, body = await submit(http, gateway.url, url, raw=raw)
        assert status == 400 and body["error"] == "bad_webhook_url", body
        assert body["text"] and "webhook" in body["message"]
    async with gateway.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 0  # nothing was stored


async def test_private_receivers_are_allowed_when_the_operator_says_so_and_none_without_a_secret(
    start_gateway: Callable[..., Awaitable[GatewayHandle]], http: aiohttp.ClientSession
) -> None:
    allowed = await start_gateway(webhook_secret=WEBHOOK_SECRET, webhook_allow_private=True)
    for url in ("http://127.0.0.1:9/hook", "http://10.0.0.1/hook", "http://169.254.169.254/x", "http://localhost/x"):
        status, body = await submit(http, allowed.url, url)
        assert status == 202, (url, body)
    off = await start_gateway()  # no DETECTBOT_WEBHOOK_SECRET
    status, body = await submit(http, off.url, "https://example.com/hook")
    assert status == 400 and body["error"] == "webhooks_off" and "DETECTBOT_WEBHOOK_SECRET" in body["message"]
    status, body = await submit(http, off.url, None)
    assert status == 202  # a job without a webhook is as before


async def test_a_receiver_that_never_answers_holds_up_no_other_receiver(
    start_gateway: Callable[..., Awaitable[GatewayHandle]],
    start_worker: Callable[..., Awaitable[WorkerHandle]],
    receivers: Callable[..., Awaitable[Receiver]],
    http: aiohttp.ClientSession,
) -> None:
    dead = await receivers(*[HANG] * 20)
    alive = await receivers()
    gateway = await start_gateway(**HOOKS, webhook_timeout_s=5.0, webhook_per_host=2)
    await start_worker(gateway, model=FIXED)
    hung = [(await submit(http, gateway.url, dead.url()))[1]["job_id"] for _ in range(6)]
    await dead.received(2)  # two tries in flight to the dead one: its host's share
    status, body = await submit(http, gateway.url, alive.url(host="localhost"))  # another host
    assert status == 202
    (event,) = [r.event for r in await alive.received(1, timeout=4)]  # well before the dead one's 5 s time out
    assert event["data"]["job_id"] == body["job_id"]
    assert len(dead.got) == 2, "a burst to one receiver is paced: two at a time"
    views = [await job_view(http, gateway.url, job_id) for job_id in hung]
    assert all(view["status"] == "done" for view in views)  # the results themselves are not held up either

    async def failing() -> dict[str, Any] | None:
        async with http.get(f"{gateway.url}/v1/webhooks", headers=gateway.headers(admin=True)) as response:
            listing: dict[str, Any] = await response.json()
        return listing if listing["failing"] else None

    listing = await eventually(failing, timeout=20, what="the timed-out webhooks listed as failing")
    assert listing["pending"] >= 1 and {f["host"] for f in listing["failing"]} == {"127.0.0.1"}
    assert all(f["last_error"].startswith(("TimeoutError", "ServerTimeoutError")) for f in listing["failing"])


async def test_a_gateway_killed_between_two_tries_delivers_the_event_after_its_restart(
    tmp_path: Path, queue_name: str, receivers: Callable[..., Awaitable[Receiver]], http: aiohttp.ClientSession
) -> None:
    receiver = await receivers(500, HANG, 200)  # the second try is in flight when the gateway dies
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DETECTBOT_")} | {
        "DETECTBOT_HOST": "127.0.0.1", "DETECTBOT_PORT": str(port), "DETECTBOT_NAME": "gw-a",
        "DETECTBOT_DATA_DIR": str(tmp_path), "DETECTBOT_DATABASE_URL": sqlite_url(tmp_path),
        "DETECTBOT_AMQP_URL": AMQP_URL, "DETECTBOT_QUEUE": queue_name,
        "DETECTBOT_API_KEYS": f"bot:{API_KEY},admin:{ADMIN_KEY},{CLIENT_KEY}",
        "DETECTBOT_SIGNING_SECRET": SIGNING_SECRET,
        "DETECTBOT_WEBHOOK_SECRET": WEBHOOK_SECRET, "DETECTBOT_WEBHOOK_ALLOW_PRIVATE": "true",
        "DETECTBOT_WEBHOOK_BACKOFF_S": "0.3",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    first = await _spawn_gateway(env, base, tmp_path / "gw-1.log")
    try:
        status, body = await submit(http, base, receiver.url())
        assert status == 202, body
        async with http.post(f"{base}/v1/jobs/{body['job_id']}/cancel", json={},
                             headers={"Authorization": f"Bearer {CLIENT_KEY}"}) as response:  # fmt: skip
            assert response.status == 200  # cancelled: a final state, so its webhook is due (no worker needed)
        await receiver.received(2)  # the 500, then a try the receiver holds
    finally:
        os.killpg(first.pid, 9)  # SIGKILL mid-try: its lease is left behind
        await first.wait()
    second = await _spawn_gateway(env, base, tmp_path / "gw-2.log")
    try:
        tries = await receiver.received(3)
        assert len({t.headers["webhook-id"] for t in tries}) == 1
        assert tries[2].event["data"]["status"] == "cancelled"
        view = await eventually(lambda: _delivered(http, base, body["job_id"]), what="delivered after the restart")
        assert view["webhook"]["attempts"] >= 2
    finally:
        os.killpg(second.pid, 9)
        await second.wait()


async def _spawn_gateway(env: dict[str, str], base: str, log: Path) -> asyncio.subprocess.Process:
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "queue_gateway", env=env, stdout=out, stderr=out, start_new_session=True
        )

    async def ready() -> bool:
        if process.returncode is not None:
            raise AssertionError(f"the gateway exited: {log.read_text()[-2000:]}")
        try:
            async with aiohttp.ClientSession() as http, http.get(f"{base}/readyz") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    await eventually(ready, timeout=60, what="the gateway process to be ready")
    return process
