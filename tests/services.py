"""The services the integration tests run against, as fixtures: the real RabbitMQ and Postgres (a new database
per test), SQLite, the real gateway and workers, started with the same factories their ``main()`` uses."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from queue_gateway.app import create_app
from queue_gateway.appkeys import database_key, link_key
from queue_gateway.service import server_options
from queue_gateway.settings import GatewaySettings
from tests.conftest import eventually
from worker.consumer import Worker
from worker.main import build_worker
from worker.settings import WorkerSettings

AMQP_URL = os.environ.get("DETECTBOT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PG_DSN = os.environ.get("DETECTBOT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
API_KEY = "test-bot-key-0123456789"  # what the bots and the CLI present: a bot key
ADMIN_KEY = "test-admin-key-0123456789"
CLIENT_KEY = "test-client-key-0123456789"  # a plain HTTP client's key
OTHER_CLIENT_KEY = "test-other-client-key-0123456789"
SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
WEBHOOK_SECRET = (
    "whsec_" + base64.b64encode(b"test-webhook-secret-0123456789ab").decode()
)  # 32 bytes, Standard Webhooks

# --- services -------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def services_answer() -> None:
    """RabbitMQ and Postgres must answer: CI starts them, and a missing one is a failure, never a skip."""

    async def probe() -> None:
        connection = await aio_pika.connect(AMQP_URL, timeout=10)
        await connection.close()
        conn = await asyncpg.connect(PG_DSN, timeout=10)
        await conn.close()

    asyncio.run(probe())


@pytest.fixture
def queue_name() -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:10]}.jobs"
    yield name
    asyncio.run(_delete_topology(name))


async def _delete_topology(name: str) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        for queue in (name, f"{name}.dead"):
            await channel.queue_delete(queue)
        await channel.exchange_delete(name.removesuffix(".jobs"))
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """A new, empty Postgres database, dropped afterwards; yields its SQLAlchemy URL."""
    name = f"detectbot_test_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(PG_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'detectbot.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Runs the test once on SQLite and once on Postgres."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'both.sqlite3'}"
        return
    async with fresh_postgres_database() as url:
        yield url


# --- gateway ----------------------------------------------------------------------------------------------


@dataclass
class GatewayHandle:
    server: TestServer
    settings: GatewaySettings
    api_key: str = API_KEY
    admin_key: str = ADMIN_KEY

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    @property
    def app(self) -> Any:
        return self.server.app

    @property
    def sessions(self) -> Any:
        return self.server.app[database_key].sessions

    def headers(self, *, admin: bool = False, role: str = "client") -> dict[str, str]:
        """A client key's header by default (an HTTP client's); ``role="bot"`` or ``admin=True`` for the others."""
        key = {"client": CLIENT_KEY, "bot": self.api_key, "admin": self.admin_key}["admin" if admin else role]
        return {"Authorization": f"Bearer {key}"}

    async def stop(self) -> None:
        await self.server.close()


def gateway_settings(tmp_path: Path, database_url: str, queue: str, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "gateway",
        "database_url": database_url,
        "amqp_url": AMQP_URL,
        "queue": queue,
        "api_keys": [SecretStr(key) for key in (f"bot:{API_KEY}", f"admin:{ADMIN_KEY}", CLIENT_KEY, OTHER_CLIENT_KEY)],
        "signing_secret": SecretStr(SIGNING_SECRET),
        "relay_interval_s": 0.2,
        "relay_grace_s": 0.5,
    }
    values.update(overrides)
    return GatewaySettings(**values)


@pytest.fixture
async def start_gateway(
    tmp_path: Path, sqlite_url: str, queue_name: str
) -> AsyncIterator[Callable[..., Awaitable[GatewayHandle]]]:
    """Start a real gateway (``create_app``) on a free port; stopped at teardown."""
    started: list[GatewayHandle] = []

    async def start(*, database_url: str | None = None, port: int = 0, **overrides: Any) -> GatewayHandle:
        settings = gateway_settings(tmp_path, database_url or sqlite_url, queue_name, **overrides)
        server = TestServer(create_app(settings), host="127.0.0.1", port=port)
        await server.start_server(**server_options(settings))
        handle = GatewayHandle(server, settings)
        started.append(handle)
        link = handle.app[link_key]
        if overrides.get("amqp_url") in (None, AMQP_URL):
            await asyncio.wait_for(link.connected.wait(), 20)
        return handle

    yield start
    for handle in reversed(started):
        await stopped_within(handle.stop(), 30, "the gateway")


async def stopped_within(stopping: Awaitable[None], seconds: float, what: str) -> None:
    """Await a shutdown; if it hangs, fail naming every task still running and where it waits."""
    try:
        await asyncio.wait_for(stopping, seconds)
    except TimeoutError:
        stacks = io.StringIO()
        for task in asyncio.all_tasks():
            print(f"task {task.get_name()}:", file=stacks)
            task.print_stack(limit=8, file=stacks)
        raise AssertionError(f"{what} did not stop within {seconds:g} s; tasks:\n{stacks.getvalue()}") from None


@pytest.fixture
async def gateway(start_gateway: Callable[..., Awaitable[GatewayHandle]]) -> GatewayHandle:
    return await start_gateway()


# --- workers ----------------------------------------------------------------------------------------------


@dataclass
class WorkerHandle:
    worker: Worker
    task: asyncio.Task[None]
    settings: WorkerSettings
    http: aiohttp.ClientSession

    async def stop(self) -> None:
        self.worker.request_stop()
        try:
            await asyncio.wait_for(self.task, 60)
        finally:
            await self.http.close()


def worker_settings(gateway: GatewayHandle, tmp_path: Path, **overrides: Any) -> WorkerSettings:
    values: dict[str, Any] = {
        "gateway_url": gateway.url,
        "amqp_url": AMQP_URL,
        "queue": gateway.settings.queue,
        "data_dir": tmp_path / "worker",
        "slots": 1,  # one inference process unless a test asks for more (the default is one per CPU)
        "infer_threads": 1,
        "name": f"test-worker-{uuid.uuid4().hex[:6]}",
        "retry_window_s": 10.0,
    }
    values.update(overrides)
    return WorkerSettings(**values)


@pytest.fixture
async def start_worker(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[WorkerHandle]]]:
    """Run a real worker in this event loop (its model runs in child processes); stopped at teardown."""
    started: list[WorkerHandle] = []

    async def start(gateway: GatewayHandle, *, model: str, **overrides: Any) -> WorkerHandle:
        settings = worker_settings(gateway, tmp_path, **overrides)
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        worker = build_worker(settings, http, model=model)  # as worker.main builds it
        task = asyncio.create_task(worker.run())
        handle = WorkerHandle(worker, task, settings, http)
        started.append(handle)
        consuming = asyncio.create_task(worker.consuming.wait())
        done, _ = await asyncio.wait({consuming, task}, timeout=120, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            consuming.cancel()
            task.result()  # raises the start-up error
        assert consuming in done, "worker did not start consuming within 120 s"
        return handle

    yield start
    for handle in reversed(started):
        if not handle.task.done():
            await handle.stop()
        else:
            await handle.http.close()


@dataclass
class ProcessHandle:
    process: asyncio.subprocess.Process
    log: Path
    lines: list[str] = field(default_factory=list)

    def kill_group(self) -> None:
        os.killpg(self.process.pid, 9)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def service_env(gateway: GatewayHandle, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DETECTBOT_")}
    env.update(
        {
            "DETECTBOT_GATEWAY_URL": gateway.url,
            "DETECTBOT_AMQP_URL": AMQP_URL,
            "DETECTBOT_QUEUE": gateway.settings.queue,
            "DETECTBOT_DATA_DIR": str(tmp_path / "worker"),
            "DETECTBOT_SLOTS": "1",
            "DETECTBOT_INFER_THREADS": "1",
            "DETECTBOT_RETRY_WINDOW_S": "10",
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        }
    )
    env.update(extra)
    return env


@pytest.fixture
async def spawn_worker_process(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[ProcessHandle]]]:
    """Run ``python -m worker`` as its own process group (so a test can SIGKILL all of it)."""
    started: list[ProcessHandle] = []

    async def spawn(gateway: GatewayHandle, *, model: str, **extra: str) -> ProcessHandle:
        log = tmp_path / f"worker-{len(started)}.log"
        env = service_env(gateway, tmp_path, DETECTBOT_MODEL=model, **extra)
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "worker", env=env, stdout=out, stderr=out, start_new_session=True
            )
        handle = ProcessHandle(process, log)
        started.append(handle)
        return handle

    yield spawn
    for handle in started:
        if handle.process.returncode is None:
            handle.kill_group()
            await handle.process.wait()


# --- images and the HTTP API --------------------------------------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def submit_photo(
    http: aiohttp.ClientSession,
    gateway: GatewayHandle,
    data: bytes,
    *,
    filename: str = "photo.jpg",
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    form = aiohttp.FormData()
    body = io.BytesIO(data) if len(data) > 1 << 20 else data  # aiohttp warns of raw bytes over 1 MiB
    form.add_field("image", body, filename=filename, content_type="application/octet-stream")
    if params is not None:
        form.add_field("params", json.dumps(params), content_type="application/json")
    async with http.post(f"{gateway.url}/v1/jobs", data=form, headers={**gateway.headers(), **(headers or {})}) as r:
        return r.status, await r.json()


async def wait_finished(
    http: aiohttp.ClientSession, gateway: GatewayHandle, job_id: str, timeout: float = 60.0
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        async with http.get(f"{gateway.url}/v1/jobs/{job_id}?wait=5", headers=gateway.headers()) as r:
            body: dict[str, Any] = await r.json()
        return body if body["finished"] else None

    return await eventually(check, timeout=timeout, what=f"job {job_id} to finish")
