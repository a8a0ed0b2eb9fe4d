"""What the benchmarks share: services as child processes, fresh databases and queues, statistics, results.

Every service runs as its own process (``detectbot gateway`` / ``worker`` / ``telegram``) with a clean
``DETECTBOT_*`` environment, in a scratch working directory (so no stray ``.env`` is read), logging to a file
whose tail is shown when it fails. Queues and Postgres databases are created per run and removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
SIGNING_SECRET = "bench-signing-secret-0123456789abcdef"
CLIENT_KEY = "bench-client-key-0123456789"
BOT_KEY = "bench-bot-key-0123456789"


# --- numbers ---------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float], digits: int = 1) -> dict[str, Any]:
    """Count, p50, p95, p99, min, max and mean of ``values``."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), digits),
        "p95": round(percentile(values, 95), digits),
        "p99": round(percentile(values, 99), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "mean": round(sum(values) / len(values), digits),
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join("" if cell is None else str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def ratio(numerator: float, denominator: float, digits: int = 3) -> float | None:
    return round(numerator / denominator, digits) if denominator else None


# --- the machine and the results --------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """Where the numbers came from."""
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
         if ln.startswith("model name")), platform.processor(),
    )  # fmt: skip
    versions: dict[str, str | None] = {}
    for dist in ("aiohttp", "sqlalchemy", "aiosqlite", "asyncpg", "aio-pika", "python-telegram-bot", "onnxruntime",
                 "numpy", "pillow"):  # fmt: skip
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "versions": versions,
    }


def service_options(parser: argparse.ArgumentParser, *, whose: str = "the services'") -> None:
    """--log-level, --workdir and --out: what every benchmark that starts the services takes."""
    parser.add_argument("--log-level", default="INFO", help=f"{whose} log level (default INFO, the product's)")
    parser.add_argument("--workdir", type=Path, help="keep the services' logs and databases here")
    parser.add_argument("--out", type=Path)


def write_results(name: str, payload: Mapping[str, Any], out: Path | None = None) -> Path:
    """benchmarks/results/<name>.json (or ``out``), with the date and the load average at the end."""
    path = out or RESULTS_DIR / f"{name}.json"
    body = {"date": datetime.now(UTC).isoformat(timespec="seconds"), **payload}
    body["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    tmp.replace(path)
    return path


# --- ports, environment, processes ------------------------------------------------------------------------


@contextlib.contextmanager
def scratch(keep: Path | None, prefix: str) -> Iterator[Path]:
    """``keep`` (created, left in place), or a temporary folder removed afterwards."""
    if keep is not None:
        yield _folder(keep.resolve())
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def detectbot_command(*args: str) -> list[str]:
    """``detectbot <args>`` from this virtualenv."""
    script = Path(sys.executable).parent / "detectbot"
    if script.is_file():
        return [str(script), *args]
    return [sys.executable, "-c", "import sys; from detectbot.cli import main; sys.exit(main())", *args]


# passed on to the services when set, to measure a choice that is not the default: DETECTBOT_EVENT_LOOP=asyncio
PASSED_ON = ("DETECTBOT_EVENT_LOOP",)


def service_env(**values: str) -> dict[str, str]:
    """This process's environment without any DETECTBOT_* variable (but those in ``PASSED_ON``), plus ``values``
    (as DETECTBOT_<NAME>)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DETECTBOT_") or k in PASSED_ON}
    env.update({f"DETECTBOT_{key.upper()}": value for key, value in values.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


class Service:
    """One child process, its log file, and a graceful stop."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.name = name
        self.proc = proc
        self.log = log

    @classmethod
    async def start(cls, name: str, command: Sequence[str], env: Mapping[str, str], workdir: Path) -> Service:
        log = _folder(workdir) / f"{name}.log"
        with log.open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                *command, env=dict(env), cwd=workdir, stdout=out, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        return cls(name, proc, log)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    def tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check(self) -> None:
        """Raise if the process has exited."""
        if not self.running:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")

    async def stop(self, grace_s: float = 30.0) -> int | None:
        """SIGTERM (a graceful stop), then SIGKILL after ``grace_s``."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode


async def wait_ready(url: str, service: Service, within_s: float = 60.0) -> None:
    """Poll ``url`` (``/readyz``) until it answers 200, with a deadline; fail early if the process died."""
    import aiohttp

    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while loop.time() < deadline:
            service.check()
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)  # polling readiness with a deadline
    raise TimeoutError(f"{service.name} not ready at {url} after {within_s:g} s:\n{service.tail()}")


async def poll_until(
    condition: Any, within_s: float, what: str, every: float = 0.1, services: Sequence[Service] = ()
) -> None:
    """Call ``condition()`` (sync or async) until it is true, with a deadline; services must stay up meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        for service in services:
            service.check()
        if loop.time() > deadline:
            raise TimeoutError(f"waited {within_s:g} s for {what}")
        await asyncio.sleep(every)  # polling with a deadline


# --- broker and databases ---------------------------------------------------------------------------------


def queue_name(prefix: str) -> str:
    return f"bench-{prefix}-{uuid.uuid4().hex[:8]}.jobs"


async def delete_topology(queue: str) -> None:
    """Remove a run's queue, its dead-letter queue and its exchange (as the gateway declares them)."""
    import aio_pika

    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        for name in (queue, f"{queue}.dead"):
            await channel.queue_delete(name)
        await channel.exchange_delete(queue.removesuffix(".jobs"))
    finally:
        await connection.close()


async def delete_queue(queue: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        await channel.queue_delete(queue)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def topology(prefix: str) -> AsyncIterator[str]:
    """A unique queue name for one run; its topology is deleted afterwards."""
    name = queue_name(prefix)
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):
            await delete_topology(name)


@contextlib.asynccontextmanager
async def database(backend: str, workdir: Path) -> AsyncIterator[str]:
    """A fresh, empty database: a new SQLite file (removed afterwards), or a new Postgres database (dropped)."""
    if backend == "sqlite":
        path = _folder(workdir) / f"bench-{uuid.uuid4().hex[:8]}.sqlite3"
        try:
            yield f"sqlite+aiosqlite:///{path}"
        finally:
            _remove(path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
        return
    import asyncpg

    name = f"detectbot_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
    finally:
        admin = await asyncpg.connect(PG_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


# One HTTP client key posting a backlog: its in-line cap (500), per-minute limit (600) and fair share of the broker
# (8; the rest held in the gateway, unpublished) would refuse or hold most of a benchmark's photos
UNLIMITED_CLIENT_KEY = {
    "max_inflight_per_key": "1000000",
    "max_per_minute_per_key": "1000000",
    "fair_share_per_key": "1000000",
}


def gateway_env(*, database_url: str, queue: str, port: int, data_dir: Path, log_level: str,
                **extra: str) -> dict[str, str]:  # fmt: skip
    """The gateway's environment: product defaults except what a benchmark must name."""
    return service_env(
        database_url=database_url,
        queue=queue,
        port=str(port),
        host="127.0.0.1",
        data_dir=str(data_dir),
        api_keys=f"{CLIENT_KEY},bot:{BOT_KEY}",
        signing_secret=SIGNING_SECRET,
        log_level=log_level,
        **extra,
    )


async def start_gateway(
    env: Mapping[str, str], workdir: Path, name: str = "gateway", *, sql_out: Path | None = None
) -> tuple[Service, str]:
    """``detectbot gateway`` with ``env`` (under ``benchmarks.sqlcount`` when ``sql_out`` is given); returns it
    once /readyz answers, and its base URL."""
    port = env["DETECTBOT_PORT"]
    command = detectbot_command("gateway")
    if sql_out is not None:
        command = [sys.executable, "-m", "benchmarks.sqlcount", str(sql_out), "gateway"]
        env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))}
    service = await Service.start(name, command, env, workdir)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(f"{base}/readyz", service)
    except BaseException:
        await service.stop()
        raise
    return service, base


DEFAULT_MODEL = "offline-nanodet"  # the product's default offline model (NanoDet-g 416, letterboxed)


def offline_model(spec: str = DEFAULT_MODEL) -> Path:
    """An offline COCO model, built once in the tests' cache (``~/.cache/detectbot-tests``): ``offline-nanodet``
    (the product's default, NanoDet-g) or ``offline-coco`` (yolov3-tiny)."""
    from tests.conftest_models import cache_dir

    cache = cache_dir()
    if spec == "offline-nanodet":
        from worker import nanodet

        return nanodet.build_offline_model(cache, source=nanodet.cached_download(cache))
    if spec != "offline-coco":
        raise ValueError(f"unknown offline model {spec!r}")
    from worker.darknet import SDIST_NAME, SDIST_VERSION, build_offline_model

    sdist = cache / f"{SDIST_NAME}-{SDIST_VERSION}.tar.gz"
    return build_offline_model(cache, sdist=sdist if sdist.is_file() else None)


def model_name(path: Path) -> str:
    """The spec a benchmark's model file stands for, for the JSON results."""
    return "offline-nanodet" if path.name.startswith("offline-nanodet") else "offline-coco"


def epoch_offset() -> float:
    """Add to a ``time.monotonic()`` reading to get UNIX time (the database's clock)."""
    return time.time() - time.monotonic()


# --- jobs ---------------------------------------------------------------------------------------------------


async def submit_photos(
    base: str, photos: Sequence[bytes], *, key: str = CLIENT_KEY, concurrency: int = 16
) -> list[str]:
    """POST each photo to /v1/jobs (multipart, as an HTTP client); the job ids, in order."""
    import aiohttp

    ids: list[str | None] = [None] * len(photos)
    todo = iter(range(len(photos)))

    async def client(http: aiohttp.ClientSession) -> None:
        for index in todo:
            form = aiohttp.FormData()
            form.add_field("image", photos[index], filename=f"photo-{index}.jpg", content_type="image/jpeg")
            async with http.post(f"{base}/v1/jobs", data=form) as response:
                body = await response.json()
                if response.status != 202:
                    raise RuntimeError(f"POST /v1/jobs answered {response.status}: {body}")
                ids[index] = body["job_id"]

    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=60)) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    return [job_id for job_id in ids if job_id is not None]


JOB_COLUMNS = ("id", "status", "origin", "received_at", "queued_at", "processing_at", "done_at", "delivered_at",
               "inference_ms", "worker", "attempts")  # fmt: skip


def sqlite_path(url: str) -> Path:
    return Path(url.split(":///", 1)[1])


def read_jobs(url: str) -> list[dict[str, Any]]:
    """Every job row's status and timestamps, read straight from the gateway's SQLite file (read-only)."""
    import sqlite3

    connection = sqlite3.connect(f"file:{sqlite_path(url)}?mode=ro", uri=True, timeout=10)
    try:
        cursor = connection.execute(f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs")
        rows = [dict(zip(JOB_COLUMNS, row, strict=True)) for row in cursor.fetchall()]
    finally:
        connection.close()
    for row in rows:
        row["origin"] = json.loads(row["origin"]) if row["origin"] else None
    return rows


def count_status(url: str, statuses: Sequence[str]) -> int:
    """How many jobs are in one of ``statuses`` (one cheap query on the SQLite file)."""
    import sqlite3

    connection = sqlite3.connect(f"file:{sqlite_path(url)}?mode=ro", uri=True, timeout=10)
    try:
        marks = ", ".join("?" for _ in statuses)
        query = f"SELECT count(*) FROM jobs WHERE status IN ({marks})"
        (count,) = connection.execute(query, tuple(statuses)).fetchone()
    finally:
        connection.close()
    return int(count)


async def sql_snapshot(service: Service, path: Path) -> dict[str, Any]:
    """Ask a service run under ``benchmarks.sqlcount`` for its statement counts (SIGUSR1) and read them."""
    asked = time.time()
    service.proc.send_signal(signal.SIGUSR1)

    found: dict[str, Any] = {}

    def fresh() -> bool:
        try:
            found.update(json.loads(path.read_text()))
        except (OSError, ValueError):
            return False
        return bool(found.get("at", 0) >= asked)

    await poll_until(fresh, 10, f"{service.name}'s SQL counts", every=0.05, services=[service])
    return found
