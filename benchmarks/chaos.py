"""Chaos: every accepted photo gets exactly one answer, whatever crashes.

    python -m benchmarks.chaos [--photos 60] [--kill-every 15-30] [--down 1-5] [--db postgres|sqlite]
                               [--gateways 2|1] [--workers 2] [--rate 1.0] [--seed N] [--deadline 180] [--quiet 10]

Runs the whole deployment as separate processes: gateways (``python -m queue_gateway``, each with its own
``DETECTBOT_NAME`` and port, one signing secret, one database), workers (``python -m worker`` with a fixed-output
test detector that naps instead of computing), the Telegram bot and the Discord bot, on a private RabbitMQ and
a private Postgres (``tests/nodes.py``; SQLite is one file both gateways share). Workers and bots reach the
gateways through a round-robin TCP proxy in this process, which skips a gateway that refuses connections. The
wire fakes of Telegram and Discord run in this process too; each caller has its own address on them, so every
recorded call says who made it.

Photos go in as Telegram photo updates to ``--chats`` chats and as Discord ``/detect`` interactions (only while the
Discord bot is connected). Every ``--kill-every`` seconds one component is SIGKILLed (its whole process group) and
started again after ``--down`` seconds; every third kill is aimed instead: the Telegram bot while it downloads a
photo, a gateway while Telegram holds the answer to its sendPhoto, a worker while a job is processing, Postgres
while a transaction is open, the Discord bot while Discord holds the answer to its defer. After the load, the run
waits (up to ``--deadline``) for every photo to be answered, then ``--quiet`` seconds more for late duplicates, and
judges from the fakes' records and the database:

- lost: no result photo and no error text ever reached the chat;
- twice: more than one result for one photo; *explained* only when the gateway that sent the first one was
  killed between that send and the next (the window between a send and its receipt); listed with evidence;
- error-only: no result, only an error text;
- not acknowledged (Discord): the bot died before answering the interaction within Discord's 3 s; Discord never
  sends it again, so it is explained only by a kill of the bot in that window;
- every job final (none received/queued/processing, no chat job left undelivered), consumers back on the
  queues, p50/p95 latency from sending to the first result, and every process log scanned for secrets.

Writes benchmarks/results/chaos-<db>.json and prints a table: component | kills | photos | lost | twice | error-only
(the photos in flight during that component's kills, and what became of them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import io
import json
import logging
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image, ImageDraw

from benchmarks.support import ROOT, free_port, machine, percentile, table, write_results
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.telegram_api import FakeTelegram
from tests.nodes import NodeFailed, PrivatePostgres, PrivateRabbitMQ

API_KEY = "chaos-bot-key-0123456789abcdef"
SIGNING_SECRET = "chaos-signing-secret-0123456789abcdef"
TELEGRAM_TOKEN = "765432:CHAOS-telegram-token-bbbbbbbbbbbbbbbbbbbb"
DISCORD_TOKEN = "CHAOS.discord.bot-token-0123456789"
CHAT_BASE = 700_001  # Telegram private chats CHAT_BASE .. CHAT_BASE + chats - 1
DISCORD_USER_BASE = 1_190_000_000_000_001_000
DISCORD_CHANNEL_BASE = 1_190_000_000_000_002_000
DISCORD_GUILD = 1_190_000_000_000_000_500
DISCORD_USERS = 20
DISCORD_CHANNELS = 10
CALLBACK_WINDOW_S = 3.5  # Discord's 3 s to answer an interaction, and a little slack
AIMED_WAIT_S = 20.0  # how long an aimed kill waits for its moment before it is skipped
UP_TIMEOUT_S = 90.0
FINAL = ("done", "delivered", "failed", "dead", "cancelled")


@dataclass
class Config:
    photos: int = 60
    kill_every: tuple[float, float] = (15.0, 30.0)
    down: tuple[float, float] = (1.0, 5.0)
    db: str = "postgres"
    gateways: int = 2
    workers: int = 2
    rate: float = 1.0  # photos per second, on average
    discord_share: float = 0.3
    chats: int = 50
    seed: int | None = None
    deadline_s: float = 180.0
    quiet_s: float = 10.0
    aimed_every: int = 3  # every n-th kill is an aimed one
    targets: tuple[str, ...] = ()  # the components random kills pick from (empty: all)
    nap_s: float = 0.2  # the test detector's "inference" time
    out: Path | None = None
    workdir: Path | None = None
    keep: bool = False
    verbose: bool = True


# --- the processes ------------------------------------------------------------------------------------------


class Proc:
    """One product process (``python -m <package>``) in its own session, with one log for all its incarnations."""

    def __init__(self, name: str, module: str, env: dict[str, str], workdir: Path, health_url: str) -> None:
        self.name = name
        self.module = module
        self.env = env
        self.workdir = workdir
        self.health_url = health_url
        self.log = workdir / f"{name}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.expected_exit = False
        self.self_exits: list[dict[str, Any]] = []
        self.started = asyncio.Event()  # set by every start

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self.expected_exit = False
        with self.log.open("ab") as out:
            out.write(f"\n--- chaos: start #{self.starts} at {time.strftime('%H:%M:%S')}\n".encode())
            out.flush()
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", self.module, env=self.env, cwd=self.workdir, stdin=asyncio.subprocess.DEVNULL,
                stdout=out, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.started.set()

    async def kill(self) -> int | None:
        """SIGKILL the whole process group (the worker's inference processes too)."""
        process = self.process
        if process is None or process.returncode is not None:
            return None
        self.expected_exit = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        return process.pid

    async def stop(self, grace_s: float = 20.0) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        self.expected_exit = True
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # anything it left in its group

    async def up(self, http: aiohttp.ClientSession, limit_s: float = UP_TIMEOUT_S) -> bool:
        """Poll its health URL until it answers 200 (a deadline, not a sleep)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        while loop.time() < deadline:
            if self.running:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(self.health_url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                        if response.status == 200:
                            return True
            await asyncio.sleep(0.2)  # polling readiness with a deadline
        return False

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class RoundRobinProxy:
    """A TCP proxy: each new connection goes to the next gateway that accepts it (a load balancer's failover)."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.port = 0
        self.connections = Counter[int]()
        self.refused = 0
        self._next = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        order = self.ports[self._next % len(self.ports) :] + self.ports[: self._next % len(self.ports)]
        self._next += 1
        upstream = None
        for port in order:
            try:
                upstream = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
            except (OSError, TimeoutError):
                continue
            self.connections[port] += 1
            break
        if upstream is None:
            self.refused += 1
            writer.close()
            return
        up_reader, up_writer = upstream
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._writers.difference_update((writer, up_writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


class NodeComponent:
    """RabbitMQ or Postgres as a component the chaos can kill and start again."""

    def __init__(self, name: str, node: PrivateRabbitMQ | PrivatePostgres) -> None:
        self.name = name
        self.node = node

    @property
    def running(self) -> bool:
        return self.node.running

    async def kill(self) -> int | None:
        pid = self.node.pid
        self.node.kill()
        return pid

    async def start(self) -> None:
        await self.node.start(UP_TIMEOUT_S)

    async def up(self, http: aiohttp.ClientSession, limit_s: float = UP_TIMEOUT_S) -> bool:
        return self.node.running


# --- what was sent ------------------------------------------------------------------------------------------


@dataclass
class Sent:
    platform: str
    at: float  # time.monotonic()
    chat: int | None = None
    message_id: int | None = None
    update_id: int | None = None
    interaction_id: str | None = None
    token: str | None = None
    channel_id: int | None = None

    @property
    def key(self) -> str:
        if self.platform == "telegram":
            return f"telegram:{self.chat}:{self.message_id}"
        return f"discord:{self.interaction_id}"


@dataclass
class Event:
    at: float
    what: str  # kill | up | skipped | self-exit
    component: str
    kind: str = ""
    pid: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Verdict:
    sent: Sent
    results: list[tuple[float, str]]  # (at, client) of every result the chat got
    errors: list[tuple[float, str]]  # (at, text) of error texts
    acknowledged: bool = True
    jobs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def category(self) -> str:
        if not self.acknowledged:
            return "not-acknowledged"
        if len(self.results) > 1:
            return "twice"
        if self.results:
            return "ok"
        return "error-only" if self.errors else "lost"

    @property
    def answered_at(self) -> float | None:
        times = [at for at, _ in self.results] or [at for at, _ in self.errors]
        return min(times) if times else None

    @property
    def latency(self) -> float | None:
        return min(at for at, _ in self.results) - self.sent.at if self.results else None


# --- the harness --------------------------------------------------------------------------------------------


class Chaos:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        own = config.workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="detectbot-chaos-")) if own else Path(config.workdir)  # type: ignore[arg-type]
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._own_workdir = own
        self.queue = f"chaos-{uuid.uuid4().hex[:8]}.jobs"
        self.tg = FakeTelegram(token=TELEGRAM_TOKEN, bot_username="detectbot_chaos_bot")
        self.dc = FakeDiscord(token=DISCORD_TOKEN)
        self.rabbit = PrivateRabbitMQ(self.workdir / "rabbitmq")
        self.pg: PrivatePostgres | None = PrivatePostgres() if config.db == "postgres" else None
        self.procs: dict[str, Proc] = {}
        self.components: dict[str, Proc | NodeComponent] = {}
        self.proxy: RoundRobinProxy | None = None
        self.sent: list[Sent] = []
        self.events: list[Event] = []
        self.discord_up = asyncio.Event()
        self.discord_skipped = 0
        self.interaction_tokens: list[str] = []
        self.t0 = time.monotonic()
        self.epoch = time.time() - time.monotonic()  # add to a monotonic reading for UNIX time
        self._watchers: list[asyncio.Task[None]] = []
        self._running = True
        self.http: aiohttp.ClientSession | None = None
        self.engine: Any = None

    # --- set-up and tear-down -------------------------------------------------------------------------

    def say(self, text: str) -> None:
        if self.config.verbose:
            print(f"[{time.monotonic() - self.t0:7.1f}s] {text}", flush=True)

    @property
    def database_url(self) -> str:
        if self.pg is not None:
            return self.pg.url
        return f"sqlite+aiosqlite:///{self.workdir / 'detectbot.sqlite3'}"

    async def start(self) -> None:
        self.http = aiohttp.ClientSession()
        await self.tg.start()
        await self.dc.start()
        nodes = [self.rabbit.start()] + ([self.pg.start()] if self.pg is not None else [])
        await asyncio.gather(*nodes)
        await self._declare_topology()
        self.components["rabbitmq"] = NodeComponent("rabbitmq", self.rabbit)
        if self.pg is not None:
            self.components["postgres"] = NodeComponent("postgres", self.pg)
        gateway_ports = [free_port() for _ in range(self.config.gateways)]
        self.proxy = RoundRobinProxy(gateway_ports)
        await self.proxy.start()
        names = [f"gw-{chr(ord('a') + n)}" for n in range(self.config.gateways)]
        for name, port in zip(names, gateway_ports, strict=True):
            self._add(name, "queue_gateway", self._gateway_env(name, port), f"http://127.0.0.1:{port}/healthz")
        for n in range(1, self.config.workers + 1):
            port = free_port()
            self._add(f"worker-{n}", "worker", self._worker_env(f"worker-{n}", port), f"http://127.0.0.1:{port}/readyz")
        port = free_port()
        self._add("telegram", "bots.telegram", self._telegram_env(port), f"http://127.0.0.1:{port}/readyz")
        port = free_port()
        self._add("discord", "bots.discord", self._discord_env(port), f"http://127.0.0.1:{port}/readyz")
        first = self.procs[names[0]]
        await first.start()  # it migrates the database; the others start on the current schema
        await self._must_be_up(first, f"http://127.0.0.1:{gateway_ports[0]}/readyz")
        rest = [p for p in self.procs.values() if p is not first]
        await asyncio.gather(*(p.start() for p in rest))
        await asyncio.gather(*(self._must_be_up(p, p.health_url) for p in rest))
        self.discord_up.set()
        for proc in self.procs.values():
            self._watchers.append(asyncio.create_task(self._watch(proc)))
        from sqlalchemy.ext.asyncio import create_async_engine

        self.engine = create_async_engine(self.database_url, pool_pre_ping=True)
        self.say(f"up: {', '.join(self.components)}; proxy {self.proxy.url}; work dir {self.workdir}")

    def _add(self, name: str, module: str, env: dict[str, str], health_url: str) -> None:
        proc = Proc(name, module, env, self.workdir / name, health_url)
        self.procs[name] = proc
        self.components[name] = proc

    async def _must_be_up(self, proc: Proc, url: str) -> None:
        probe = Proc(proc.name, proc.module, proc.env, proc.workdir, url)
        probe.process = proc.process
        assert self.http is not None
        if not await probe.up(self.http, limit_s=120):
            raise RuntimeError(f"{proc.name} did not become ready at {url}:\n{proc.tail(30)}")

    async def _declare_topology(self) -> None:
        """Declare the queues once and make them durable before any crash (see tests/nodes.py's caveat)."""
        import aio_pika

        from queue_gateway.public.settings import QueueSettings
        from queue_gateway.public.topology import declare

        connection = await aio_pika.connect(self.rabbit.url)
        try:
            await declare(await connection.channel(), QueueSettings(queue=self.queue).topology())
        finally:
            await connection.close()
        await self.rabbit.checkpoint()

    def _base_env(self, name: str, **values: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DETECTBOT_")}
        env.update({f"DETECTBOT_{key.upper()}": value for key, value in values.items()})
        env.update(
            {
                "DETECTBOT_NAME": name,
                "DETECTBOT_LOG_LEVEL": "INFO",
                "DETECTBOT_DATA_DIR": str(self.workdir / name / "data"),
                "PYTHONPATH": str(ROOT),
                "PYTHONUNBUFFERED": "1",
                "PTB_TIMEDELTA": "true",
            }
        )
        return env

    def _gateway_env(self, name: str, port: int) -> dict[str, str]:
        return self._base_env(
            name,
            host="127.0.0.1",
            port=str(port),
            database_url=self.database_url,
            blob_dir=str(self.workdir / "blobs"),  # the replicas share the blob store, as they share the database
            amqp_url=self.rabbit.url,
            queue=self.queue,
            api_keys=f"bot:{API_KEY}",
            signing_secret=SIGNING_SECRET,
            telegram_token=TELEGRAM_TOKEN,
            telegram_api_url=self.tg.base_url_for(name),
            telegram_file_url=self.tg.base_file_url_for(name),
            discord_token=DISCORD_TOKEN,
            discord_api_url=self.dc.api_base_for(name),
            max_inflight_per_user="50",  # the chaos measures crashes, not the per-person limits
            max_per_minute_per_user="500",
            fair_share_per_user="50",
        )

    def _worker_env(self, name: str, port: int) -> dict[str, str]:
        assert self.proxy is not None
        env = self._base_env(
            name,
            gateway_url=self.proxy.url,
            amqp_url=self.rabbit.url,
            queue=self.queue,
            model="py:tests.detectors:napping",
            slots="1",
            infer_threads="1",
            http_port=str(port),
        )
        env["DETECTBOT_TEST_NAP_S"] = str(self.config.nap_s)
        return env

    def _telegram_env(self, port: int) -> dict[str, str]:
        assert self.proxy is not None
        return self._base_env(
            "telegram",
            telegram_token=TELEGRAM_TOKEN,
            telegram_api_url=self.tg.base_url_for("telegram-bot"),
            telegram_file_url=self.tg.base_file_url_for("telegram-bot"),
            gateway_url=self.proxy.url,
            api_key=API_KEY,
            http_port=str(port),
        )

    def _discord_env(self, port: int) -> dict[str, str]:
        assert self.proxy is not None
        return self._base_env(
            "discord",
            discord_token=DISCORD_TOKEN,
            discord_api_url=self.dc.api_base_for("discord-bot"),
            discord_gateway_url=self.dc.gateway_url,
            discord_guild_ready_timeout="0.05",
            gateway_url=self.proxy.url,
            api_key=API_KEY,
            http_port=str(port),
        )

    async def _watch(self, proc: Proc) -> None:
        """A process that exits by itself is written down and started again (as a service manager would)."""
        while self._running:
            process = proc.process
            if process is None:
                return
            code = await process.wait()
            if not self._running:
                return
            if proc.process is process and not proc.expected_exit:
                self.say(f"{proc.name} exited by itself ({code}); starting it again")
                proc.self_exits.append({"t": self.rel(time.monotonic()), "code": code, "tail": proc.tail(12)})
                self.events.append(Event(time.monotonic(), "self-exit", proc.name, detail={"code": code}))
                await asyncio.sleep(1.0)  # a service manager's restart delay
                if self._running and proc.process is process:
                    await proc.start()
            if proc.process is process:  # killed by the chaos, which starts it again: wait for that
                proc.started.clear()
                await proc.started.wait()

    async def close(self) -> None:
        self._running = False
        with contextlib.suppress(OSError):
            self.dump_calls()
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        await asyncio.gather(*(proc.stop() for proc in self.procs.values()))
        if self.engine is not None:
            await self.engine.dispose()
        if self.proxy is not None:
            await self.proxy.close()
        await self.tg.close()
        await self.dc.close()
        if self.http is not None:
            await self.http.close()

    def remove_nodes(self) -> None:
        self.rabbit.close()
        if self.pg is not None:
            self.pg.close()
        if self._own_workdir and not self.config.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def rel(self, at: float) -> float:
        return round(at - self.t0, 2)

    # --- load ---------------------------------------------------------------------------------------

    async def load(self) -> None:
        config = self.config
        for number in range(config.photos):
            platform = "discord" if self.rng.random() < config.discord_share else "telegram"
            if platform == "discord" and not self.discord_up.is_set():
                self.discord_skipped += 1
                platform = "telegram"
            data = photo(number, self.rng)
            if platform == "telegram":
                self._send_telegram(data)
            else:
                await self._send_discord(data, number)
            await asyncio.sleep(self.rng.uniform(0.5, 1.5) / config.rate)  # pacing the load

    def _send_telegram(self, data: bytes) -> None:
        chat = CHAT_BASE + self.rng.randrange(self.config.chats)
        update = self.tg.send_photo_update(chat, data=data)
        message = update["message"]
        self.sent.append(Sent("telegram", time.monotonic(), chat, message["message_id"], update["update_id"]))

    async def _send_discord(self, data: bytes, number: int) -> None:
        attachment = self.dc.add_attachment(data, f"photo-{number}.jpg", "image/jpeg")
        channel = DISCORD_CHANNEL_BASE + self.rng.randrange(DISCORD_CHANNELS)
        at = time.monotonic()
        interaction = await self.dc.create_slash_interaction(
            "detect",
            user_id=DISCORD_USER_BASE + self.rng.randrange(DISCORD_USERS),
            channel_id=channel,
            guild_id=DISCORD_GUILD,
            attachments=[attachment],
        )
        self.interaction_tokens.append(interaction["token"])
        sent = Sent("discord", at, interaction_id=interaction["id"], token=interaction["token"], channel_id=channel)
        self.sent.append(sent)

    # --- kills --------------------------------------------------------------------------------------

    def killable(self) -> list[str]:
        wanted = self.config.targets
        return [name for name in self.components if not wanted or name in wanted or name.rstrip("-ab12") in wanted]

    async def chaos(self, stop: asyncio.Event) -> None:
        """Kill something every --kill-every seconds until ``stop`` is set; every n-th kill is aimed."""
        aimed = [self.aim_download, self.aim_send_photo, self.aim_worker_mid_job, self.aim_discord_defer]
        if self.pg is not None:
            aimed.insert(3, self.aim_postgres_mid_transaction)
        count = 0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.rng.uniform(*self.config.kill_every))
            if stop.is_set():
                return
            count += 1
            if self.config.aimed_every and count % self.config.aimed_every == 0:
                await aimed[(count // self.config.aimed_every - 1) % len(aimed)]()
            else:
                await self.crash(self.rng.choice(self.killable()), "random")

    async def crash(
        self, name: str, kind: str, detail: dict[str, Any] | None = None, after_kill: Callable[[], None] | None = None
    ) -> None:
        component = self.components[name]
        if name == "discord":
            self.discord_up.clear()  # from now on no interaction counts as sent
        killed_at = time.monotonic()
        pid = await component.kill()
        self.events.append(Event(killed_at, "kill", name, kind, pid, detail or {}))
        self.say(f"kill -9 {name} ({kind}){' ' + json.dumps(detail) if detail else ''}")
        if after_kill is not None:
            after_kill()
        await asyncio.sleep(self.rng.uniform(*self.config.down))  # the component stays down this long
        try:
            await component.start()
        except NodeFailed as exc:
            self.events.append(Event(time.monotonic(), "start-failed", name, detail={"error": str(exc)[-2000:]}))
            raise
        assert self.http is not None
        up = await component.up(self.http)
        self.events.append(Event(time.monotonic(), "up" if up else "not-up", name))
        self.say(f"{name} {'back' if up else 'NOT back'} after {time.monotonic() - killed_at:.1f} s")
        if name == "discord" and up:
            self.discord_up.set()

    async def _caught(self, event: asyncio.Event) -> bool:
        try:
            await asyncio.wait_for(event.wait(), AIMED_WAIT_S)
        except TimeoutError:
            return False
        return True

    def _skipped(self, kind: str, why: str) -> None:
        self.events.append(Event(time.monotonic(), "skipped", "", kind, detail={"why": why}))
        self.say(f"aimed kill {kind} skipped: {why}")

    async def aim_download(self) -> None:
        """The Telegram bot, between its getFile and its submit: the download's answer is held."""
        hold = self.tg.hold_next("downloadFile", lambda call: call.client == "telegram-bot")
        if not await self._caught(hold.arrived):
            self.tg.drop_hold(hold)
            return self._skipped("aimed:download", f"no download within {AIMED_WAIT_S:g} s")
        assert hold.call is not None
        await self.crash("telegram", "aimed:download", {"file_path": hold.call.params.get("file_path")}, hold.release)

    async def aim_send_photo(self) -> None:
        """A gateway while Telegram holds the answer to its sendPhoto (the photo is already in the chat)."""
        hold = self.tg.hold_next("sendPhoto", lambda call: call.client.startswith("gw-"))
        if not await self._caught(hold.arrived):
            self.tg.drop_hold(hold)
            return self._skipped("aimed:sendPhoto", f"no sendPhoto within {AIMED_WAIT_S:g} s")
        call = hold.call
        assert call is not None
        detail = {"chat": call.params.get("chat_id"), "reply_to": _reply_target(call.params)}
        await self.crash(call.client, "aimed:sendPhoto", detail, hold.release)

    async def aim_discord_defer(self) -> None:
        """The Discord bot right after it deferred an interaction: Discord shows "thinking…", the answer to the
        defer is held, so the bot dies before it has written the interaction to its inbox."""
        hold = self.dc.hold_next("POST /interactions/*", lambda call: call.client == "discord-bot")
        if not await self._caught(hold.arrived):
            self.dc.drop_hold(hold)
            return self._skipped("aimed:discord-defer", f"no interaction within {AIMED_WAIT_S:g} s")
        assert hold.call is not None
        interaction = hold.call.path.split("/")[2]
        await self.crash("discord", "aimed:discord-defer", {"interaction": interaction}, hold.release)

    async def aim_worker_mid_job(self) -> None:
        """A worker while the database says one of its jobs is processing."""
        from sqlalchemy import text

        workers = [name for name in self.procs if name.startswith("worker-")]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + AIMED_WAIT_S
        while loop.time() < deadline:
            with contextlib.suppress(Exception):  # the database may be away right now
                async with self.engine.connect() as conn:
                    row = (
                        await conn.execute(
                            text("SELECT id, worker FROM jobs WHERE status = 'processing' ORDER BY processing_at DESC")
                        )
                    ).first()
                if row is not None and row.worker in workers:
                    return await self.crash(row.worker, "aimed:mid-job", {"job": row.id})
            await asyncio.sleep(0.02)  # polling for the moment, with a deadline
        self._skipped("aimed:mid-job", f"no job processing within {AIMED_WAIT_S:g} s")

    async def aim_postgres_mid_transaction(self) -> None:
        """Postgres while one of the gateways' transactions is open."""
        import asyncpg

        assert self.pg is not None
        query = (
            "SELECT pid, state, left(query, 160) AS query FROM pg_stat_activity WHERE datname = $1 "
            "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL AND backend_type = 'client backend' "
            "AND state IN ('active', 'idle in transaction') AND query NOT ILIKE '%pg_stat_activity%' LIMIT 1"
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + AIMED_WAIT_S
        conn = None
        try:
            while loop.time() < deadline:
                try:
                    conn = conn or await asyncpg.connect(self.pg.dsn, timeout=2)
                    row = await conn.fetchrow(query, self.pg.database)
                except Exception:
                    conn = None
                    row = None
                if row is not None:
                    await conn.close()  # type: ignore[union-attr]
                    conn = None
                    detail = {"state": row["state"], "query": row["query"]}
                    return await self.crash("postgres", "aimed:mid-transaction", detail)
                await asyncio.sleep(0.01)  # polling for the moment, with a deadline
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
        self._skipped("aimed:mid-transaction", f"no open transaction within {AIMED_WAIT_S:g} s")

    # --- the end ------------------------------------------------------------------------------------

    async def everything_up(self) -> None:
        assert self.http is not None
        for name, component in self.components.items():
            if not component.running:
                self.say(f"{name} is not running at the end of the chaos; starting it")
                await component.start()
            if not await component.up(self.http):
                self.say(f"{name} is not up at the end of the chaos")
        if self.procs["discord"].running:
            self.discord_up.set()

    async def drain(self) -> float:
        """Wait until every photo has an answer and no job is stuck (or the deadline); then the quiet period."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.config.deadline_s
        while loop.time() < deadline:
            verdicts = self.verdicts({})
            waiting = [v for v in verdicts if v.category in ("lost",)]
            if not waiting and not await self.stuck_jobs():
                break
            await asyncio.sleep(1.0)  # polling for the last answers, with a deadline
        drained = loop.time() - started
        self.say(f"drained in {drained:.1f} s; quiet for {self.config.quiet_s:g} s")
        await asyncio.sleep(self.config.quiet_s)  # late duplicates would show up now
        return drained

    async def jobs(self) -> list[dict[str, Any]]:
        from sqlalchemy import select

        from db.models import Job

        columns = [
            Job.id, Job.status, Job.platform, Job.idempotency_key, Job.origin, Job.attempts, Job.error_code,
            Job.error, Job.worker, Job.received_at, Job.done_at, Job.delivered_at, Job.next_delivery_at,
            Job.delivery_attempts, Job.delivery_error, Job.delivery_receipt, Job.dead_at, Job.failed_at,
        ]  # fmt: skip
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(*columns))).mappings().all()
        return [dict(row) for row in rows]

    async def stuck_jobs(self) -> list[dict[str, Any]]:
        try:
            jobs = await self.jobs()
        except Exception:
            return [{"error": "database unreachable"}]
        return [job for job in jobs if _stuck(job)]

    # --- judging ------------------------------------------------------------------------------------

    def verdicts(self, jobs_by_key: dict[str, list[dict[str, Any]]]) -> list[Verdict]:
        photos: dict[int, list[tuple[float, int]]] = {}
        for sent in self.sent:
            if sent.chat is not None and sent.message_id is not None:
                photos.setdefault(sent.chat, []).append((sent.at, sent.message_id))
        telegram = _telegram_answers(self.tg, photos)
        discord = _discord_answers(self.dc)
        verdicts = []
        for sent in self.sent:
            if sent.platform == "telegram":
                results, errors = telegram.get((sent.chat, sent.message_id), ([], []))
                acknowledged = True
            else:
                results, errors = discord.get(sent.token or "", ([], []))
                acknowledged = bool(self.dc.interaction_state(sent.interaction_id or "0").callbacks)
            verdicts.append(Verdict(sent, sorted(results), sorted(errors), acknowledged, jobs_by_key.get(sent.key, [])))
        return verdicts

    def kills(self) -> list[Event]:
        return [e for e in self.events if e.what == "kill"]

    def explain_twice(self, verdict: Verdict) -> dict[str, Any]:
        """A duplicate is explained when the gateway that sent the earlier result died before the next one."""
        steps = []
        for (first_at, sender), (next_at, next_sender) in zip(verdict.results, verdict.results[1:], strict=False):
            kill = next((k for k in self.kills() if k.component == sender and first_at <= k.at <= next_at), None)
            between = None if kill is None else {"component": kill.component, "t": self.rel(kill.at), "kind": kill.kind}
            steps.append(
                {
                    "sent": self.rel(first_at),
                    "by": sender,
                    "again": self.rel(next_at),
                    "again_by": next_sender,
                    "kill_between": between,
                }
            )
        return {"explained": all(step["kill_between"] for step in steps), "steps": steps}

    def explain_unacknowledged(self, verdict: Verdict) -> dict[str, Any]:
        at = verdict.sent.at
        kill = next(
            (k for k in self.kills() if k.component == "discord" and at - 0.5 <= k.at <= at + CALLBACK_WINDOW_S),
            None,
        )
        return {"explained": kill is not None, "kill": None if kill is None else {"t": self.rel(kill.at)}}

    def in_flight(self, verdict: Verdict, kill: Event) -> bool:
        """Sent before the kill and answered (for the last time) after it; a photo never answered counts for the
        first kill after it was sent only."""
        times = [at for at, _ in verdict.results] or [at for at, _ in verdict.errors]
        if times:
            return verdict.sent.at <= kill.at <= max(times)
        first = next((k for k in self.kills() if k.at >= verdict.sent.at), None)
        return first is kill

    def dump_calls(self) -> None:
        """The fakes' records, one JSON line per call, into the work directory (kept with --keep)."""
        with (self.workdir / "fake-telegram.jsonl").open("w") as out:
            for call in self.tg.calls:
                params = {k: v for k, v in call.params.items() if k not in ("allowed_updates", "commands")}
                result = call.result
                if call.method == "getUpdates" and isinstance(result, list):
                    result = [u.get("update_id") for u in result]
                elif isinstance(result, dict):
                    result = {k: result[k] for k in ("message_id", "file_path") if k in result}
                line = {"t": self.rel(call.at), "method": call.method, "client": call.client,
                        "status": call.status, "params": params, "result": result}  # fmt: skip
                out.write(json.dumps(line, default=str) + "\n")
        with (self.workdir / "fake-discord.jsonl").open("w") as out:
            for dcall in self.dc.calls:
                body = dcall.json if isinstance(dcall.json, dict) else None
                line = {"t": self.rel(dcall.at), "key": dcall.key, "client": dcall.client, "status": dcall.status,
                        "files": len(dcall.files), "json": body}  # fmt: skip
                out.write(json.dumps(line, default=str) + "\n")


# --- reading the fakes --------------------------------------------------------------------------------------


def _reply_target(params: dict[str, Any]) -> int | None:
    reply = params.get("reply_parameters")
    if isinstance(reply, dict) and "message_id" in reply:
        return int(reply["message_id"])
    value = params.get("reply_to_message_id")
    return int(value) if value is not None else None


@functools.cache
def _progress_texts() -> tuple[frozenset[str], tuple[str, ...]]:
    from queue_gateway.public import texts

    keys = ("received", "queued_now", "processing", "status_moved", "waiting_for_service")
    prefixes = ("Queued", texts.text("done_in", seconds=1.0).split("1")[0])
    return frozenset(texts.text(key) for key in keys), prefixes


def is_progress(text: str) -> bool:
    exact, prefixes = _progress_texts()
    return text in exact or text.startswith(prefixes)


Answers = dict[Any, tuple[list[tuple[float, str]], list[tuple[float, str]]]]


def _telegram_answers(fake: FakeTelegram, photos: dict[int, list[tuple[float, int]]]) -> Answers:
    """Per (chat, photo message id): the result photos (at, client) and the error texts (at, text).

    A text that replies to nothing (the bot's error handler does not quote in private chats) is taken to be
    about the chat's latest photo sent before it.
    """
    found: Answers = {}
    status_of: dict[tuple[int, int], int] = {}  # (chat, status message id) -> photo message id
    for call in fake.calls:
        if not call.ok or not isinstance(call.params.get("chat_id"), int):
            continue
        chat = int(call.params["chat_id"])
        target = _reply_target(call.params)
        if target is None and call.method == "sendMessage":
            earlier = [message_id for at, message_id in photos.get(chat, []) if at <= call.at]
            target = earlier[-1] if earlier else None
        if call.method in ("sendPhoto", "sendDocument") and target is not None:
            found.setdefault((chat, target), ([], []))[0].append((call.at, call.client))
        elif call.method == "sendMessage" and target is not None:
            status_of[(chat, int(call.result["message_id"]))] = target
            text = str(call.params.get("text", ""))
            if not is_progress(text):
                found.setdefault((chat, target), ([], []))[1].append((call.at, text))
        elif call.method == "editMessageText":
            photo_id = status_of.get((chat, int(call.params.get("message_id", 0))))
            text = str(call.params.get("text", ""))
            if photo_id is not None and not is_progress(text):
                found.setdefault((chat, photo_id), ([], []))[1].append((call.at, text))
    return found


def _discord_answers(fake: FakeDiscord) -> Answers:
    """Per interaction token: the result follow-ups (at, client) and the error texts (at, text)."""
    found: Answers = {}
    for call in fake.calls:
        if not 200 <= call.status < 300:
            continue
        parts = call.path.strip("/").split("/")
        if len(parts) < 3 or parts[0] != "webhooks":
            continue
        token = parts[2]
        content = str((call.json or {}).get("content") or "") if isinstance(call.json, dict) else ""
        if call.method == "POST" and len(parts) == 3 and call.files:
            found.setdefault(token, ([], []))[0].append((call.at, call.client))
        elif content and not is_progress(content):
            found.setdefault(token, ([], []))[1].append((call.at, content))
    return found


def _stuck(job: dict[str, Any]) -> bool:
    if job["status"] not in FINAL:
        return True
    chat = job["platform"] in ("telegram", "discord")
    undelivered = (
        chat and job["delivered_at"] is None and job["delivery_error"] is None and job["status"] != "cancelled"
    )
    return bool(undelivered or job["next_delivery_at"] is not None)


def photo(number: int, rng: random.Random) -> bytes:
    """A small JPEG unlike every other one (so the gateway's result cache never answers it)."""
    image = Image.new("RGB", (320, 240), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = rng.randrange(300), rng.randrange(220)
        draw.rectangle((x, y, x + rng.randrange(10, 60), y + rng.randrange(10, 60)), fill=(rng.randrange(256),) * 3)
    draw.text((10, 10), f"chaos #{number} {uuid.uuid4().hex[:8]}", fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


# --- the report ---------------------------------------------------------------------------------------------


def _jobs_by_key(jobs: list[dict[str, Any]], sent: list[Sent]) -> dict[str, list[dict[str, Any]]]:
    by_update = {s.update_id: s.key for s in sent if s.update_id is not None}
    by_interaction = {s.interaction_id: s.key for s in sent if s.interaction_id is not None}
    found: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        key = str(job["idempotency_key"] or "")
        match = re.search(r":(telegram|discord):(\d+)(?::\d+)?$", key)
        if match is None:
            continue
        number = int(match.group(2))
        photo_key = by_update.get(number) if match.group(1) == "telegram" else by_interaction.get(str(number))
        if photo_key is not None:
            found.setdefault(photo_key, []).append(job)
    return found


def _secrets(chaos: Chaos) -> dict[str, str]:
    return {"telegram token": TELEGRAM_TOKEN, "discord token": DISCORD_TOKEN, "signing secret": SIGNING_SECRET,
            "api key": API_KEY}  # fmt: skip


def scan_logs(chaos: Chaos) -> dict[str, Any]:
    """Every process log: secrets that reached it (never printed), and the ERROR lines, counted."""
    files = [proc.log for proc in chaos.procs.values()] + chaos.rabbit.log_files()
    if chaos.pg is not None:
        files += chaos.pg.log_files()
    secrets = _secrets(chaos)
    tokens = set(chaos.interaction_tokens)
    leaks: list[dict[str, Any]] = []
    errors: dict[str, Counter[str]] = {}
    warnings: dict[str, Counter[str]] = {}
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for what, secret in secrets.items():
                if secret in line:
                    leaks.append({"file": path.name, "line": number, "secret": what,
                                  "text": line.replace(secret, "<" + what + ">")[:300]})  # fmt: skip
            for token in tokens:
                if token in line:
                    leaks.append({"file": path.name, "line": number, "secret": "discord interaction token",
                                  "text": line.replace(token, "<interaction token>")[:300]})  # fmt: skip
            if " ERROR " in line or "[error]" in line or line.startswith("Traceback"):
                errors.setdefault(path.stem, Counter())[_shape(line.split(" ERROR ", 1)[-1])] += 1
            elif " WARNING " in line or "[warning]" in line:
                warnings.setdefault(path.stem, Counter())[_shape(line.split(" WARNING ", 1)[-1])] += 1
    return {
        "files": [str(p) for p in files],
        "leaks": leaks,
        "errors": {name: dict(counter.most_common(12)) for name, counter in errors.items()},
        "warnings": {name: dict(counter.most_common(12)) for name, counter in warnings.items()},
        "unhandled_500s": sum(
            count for name, counter in errors.items() for msg, count in counter.items() if "unhandled error" in msg
        ),
    }


def _shape(message: str) -> str:
    """A log message with its ids and numbers blanked, so that alike lines count together."""
    message = re.sub(r"[0-9a-f]{32}", "<id>", message)
    return re.sub(r"\d+(\.\d+)?", "N", message).strip()[:200]


async def queue_state(chaos: Chaos) -> dict[str, Any]:
    import aio_pika

    try:
        connection = await aio_pika.connect(chaos.rabbit.url, timeout=10)
    except Exception as exc:
        return {"error": repr(exc)}
    try:
        channel = await connection.channel()
        state = {}
        for name in (chaos.queue, f"{chaos.queue}.dead"):
            declared = await channel.declare_queue(name, passive=True)
            result = declared.declaration_result
            state[name] = {"messages": result.message_count, "consumers": result.consumer_count}
        return state
    finally:
        await connection.close()


def job_log_lines(chaos: Chaos, job_ids: list[str], limit: int = 12) -> list[str]:
    lines = []
    for proc in chaos.procs.values():
        if not proc.name.startswith("gw-"):
            continue
        with contextlib.suppress(OSError):
            for line in proc.log.read_text(errors="replace").splitlines():
                if any(job_id in line for job_id in job_ids):
                    lines.append(f"{proc.name}: {line[:240]}")
    return lines[-limit:]


def summarise(chaos: Chaos, verdicts: list[Verdict], jobs: list[dict[str, Any]]) -> dict[str, Any]:
    categories = Counter(v.category for v in verdicts)
    anomalies = []
    for verdict in verdicts:
        category = verdict.category
        if category == "ok":
            continue
        entry: dict[str, Any] = {
            "photo": verdict.sent.key,
            "category": category,
            "sent": chaos.rel(verdict.sent.at),
            "results": [{"t": chaos.rel(at), "by": who} for at, who in verdict.results],
            "errors": [{"t": chaos.rel(at), "text": text[:200]} for at, text in verdict.errors],
            "jobs": [_job_view(chaos, job) for job in verdict.jobs],
            "kills_nearby": [
                {"t": chaos.rel(k.at), "component": k.component, "kind": k.kind}
                for k in chaos.kills()
                if verdict.sent.at - 5 <= k.at <= (verdict.answered_at or time.monotonic()) + 5
            ],
        }
        if category == "twice":
            entry["evidence"] = chaos.explain_twice(verdict)
        if category == "not-acknowledged":
            entry["evidence"] = chaos.explain_unacknowledged(verdict)
        entry["gateway_log"] = job_log_lines(chaos, [job["id"] for job in verdict.jobs])
        anomalies.append(entry)
    twice = [a for a in anomalies if a["category"] == "twice"]
    unacknowledged = [a for a in anomalies if a["category"] == "not-acknowledged"]
    latencies = [v.latency for v in verdicts if v.latency is not None]
    multi_job = [key for key, found in _jobs_by_key(jobs, chaos.sent).items() if len(found) > 1]
    return {
        "photos": len(verdicts),
        "by_platform": dict(Counter(v.sent.platform for v in verdicts)),
        "discord_skipped_while_down": chaos.discord_skipped,
        "categories": dict(categories),
        "lost": categories["lost"],
        "twice": categories["twice"],
        "twice_unexplained": sum(1 for a in twice if not a["evidence"]["explained"]),
        "error_only": categories["error-only"],
        "not_acknowledged": categories["not-acknowledged"],
        "not_acknowledged_unexplained": sum(1 for a in unacknowledged if not a["evidence"]["explained"]),
        "photos_with_several_jobs": multi_job,
        "latency_s": {
            "p50": _round(percentile(latencies, 50)),
            "p95": _round(percentile(latencies, 95)),
            "max": _round(max(latencies)) if latencies else None,
            "n": len(latencies),
        },
        "anomalies": anomalies,
    }


def _job_view(chaos: Chaos, job: dict[str, Any]) -> dict[str, Any]:
    def at(value: float | None) -> float | None:
        return None if value is None else chaos.rel(value - chaos.epoch)

    return {
        "id": job["id"],
        "status": job["status"],
        "attempts": job["attempts"],
        "error": job["error"],
        "worker": job["worker"],
        "received": at(job["received_at"]),
        "done": at(job["done_at"]),
        "delivered": at(job["delivered_at"]),
        "delivery_attempts": job["delivery_attempts"],
        "delivery_error": job["delivery_error"],
        "receipt": job["delivery_receipt"],
    }


def _round(value: float | None) -> float | None:
    return None if value is None or value != value else round(value, 2)


def component_rows(chaos: Chaos, verdicts: list[Verdict]) -> list[list[Any]]:
    """component | kills | photos in flight during its kills | of those: lost | twice | error-only."""
    rows = []
    for name in chaos.components:
        kills = [k for k in chaos.kills() if k.component == name]
        hit = [v for v in verdicts if any(chaos.in_flight(v, k) for k in kills)]
        rows.append([name, len(kills), len(hit), *_counts(hit)])
    untouched = [v for v in verdicts if not any(chaos.in_flight(v, k) for k in chaos.kills())]
    rows.append(["(no kill in flight)", 0, len(untouched), *_counts(untouched)])
    rows.append(["all", len(chaos.kills()), len(verdicts), *_counts(verdicts)])
    return rows


def _counts(verdicts: list[Verdict]) -> list[int]:
    found = Counter(v.category for v in verdicts)
    return [found["lost"], found["twice"], found["error-only"]]


async def run(config: Config) -> dict[str, Any]:
    """The whole run; returns the report (also written as JSON)."""
    chaos = Chaos(config)
    started = time.monotonic()
    report: dict[str, Any] = {"config": _config_view(config), "code": _code_state(), "machine": machine()}
    try:
        await chaos.start()
        stop = asyncio.Event()
        killer = asyncio.create_task(chaos.chaos(stop))
        try:
            await chaos.load()
        finally:
            stop.set()
            await killer
        chaos.say(f"load done: {len(chaos.sent)} photos sent; waiting for the answers")
        await chaos.everything_up()
        report["drain_s"] = round(await chaos.drain(), 1)
        jobs = await chaos.jobs()
        verdicts = chaos.verdicts(_jobs_by_key(jobs, chaos.sent))
        report["summary"] = summarise(chaos, verdicts, jobs)
        report["photos"] = [
            {"photo": v.sent.key, "sent": chaos.rel(v.sent.at), "category": v.category,
             "results": [chaos.rel(at) for at, _ in v.results], "errors": len(v.errors)}
            for v in verdicts
        ]  # fmt: skip
        report["jobs"] = {
            "total": len(jobs),
            "by_status": dict(Counter(job["status"] for job in jobs)),
            "stuck": [_job_view(chaos, job) for job in jobs if _stuck(job)],
            "attempts_over_1": sum(1 for job in jobs if (job["attempts"] or 0) > 1),
            "dead_or_failed": [_job_view(chaos, job) for job in jobs if job["status"] in ("dead", "failed")],
            "delivery_errors": [_job_view(chaos, job) for job in jobs if job["delivery_error"]],
        }
        report["queues"] = await queue_state(chaos)
        report["table"] = component_rows(chaos, verdicts)
    finally:
        report["kills"] = [
            {"t": chaos.rel(e.at), "what": e.what, "component": e.component, "kind": e.kind, "pid": e.pid,
             "detail": e.detail}
            for e in chaos.events
        ]  # fmt: skip
        report["recovery_s"] = recovery(chaos)
        report["self_exits"] = {p.name: p.self_exits for p in chaos.procs.values() if p.self_exits}
        report["starts"] = {p.name: p.starts for p in chaos.procs.values()}
        if chaos.proxy is not None:
            report["proxy"] = {"connections": dict(chaos.proxy.connections), "refused": chaos.proxy.refused}
        await chaos.close()
        report["logs"] = scan_logs(chaos)
        report["work_dir"] = str(chaos.workdir) if (config.keep or not chaos._own_workdir) else None
        report["wall_s"] = round(time.monotonic() - started, 1)
        chaos.remove_nodes()
        path = write_results(f"chaos-{config.db}", report, config.out)
        if config.verbose:
            print_report(report, path)
    return report


def recovery(chaos: Chaos) -> dict[str, dict[str, Any]]:
    """Per component: seconds from each kill until it was up again (the down time included)."""
    found: dict[str, list[float]] = {}
    pending: dict[str, float] = {}
    for event in chaos.events:
        if event.what == "kill":
            pending[event.component] = event.at
        elif event.what == "up" and event.component in pending:
            found.setdefault(event.component, []).append(event.at - pending.pop(event.component))
    return {
        name: {"n": len(values), "p50": _round(percentile(values, 50)), "max": _round(max(values))}
        for name, values in found.items()
    }


def _code_state() -> dict[str, Any]:
    """Which code ran: the commit, and the files changed on top of it."""
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "HEAD"), "changed_files": git("status", "--porcelain").count("\n") + 1}


def _config_view(config: Config) -> dict[str, Any]:
    return {
        "photos": config.photos, "kill_every_s": list(config.kill_every), "down_s": list(config.down),
        "db": config.db, "gateways": config.gateways, "workers": config.workers, "rate": config.rate,
        "discord_share": config.discord_share, "chats": config.chats, "seed": config.seed,
        "deadline_s": config.deadline_s, "quiet_s": config.quiet_s, "aimed_every": config.aimed_every,
        "nap_s": config.nap_s, "targets": list(config.targets),
    }  # fmt: skip


def print_report(report: dict[str, Any], path: Path) -> None:
    if "table" in report:
        print()
        print(table(["component", "kills", "photos", "lost", "twice", "error-only"], report["table"]))
    summary = report.get("summary", {})
    if summary:
        print()
        print(
            f"photos {summary['photos']} {summary['by_platform']}: lost {summary['lost']}, twice {summary['twice']} "
            f"({summary['twice_unexplained']} unexplained), error-only {summary['error_only']}, "
            f"not acknowledged {summary['not_acknowledged']} ({summary['not_acknowledged_unexplained']} unexplained); "
            f"latency p50 {summary['latency_s']['p50']} s, p95 {summary['latency_s']['p95']} s"
        )
    jobs = report.get("jobs", {})
    if jobs:
        print(f"jobs {jobs['by_status']}; stuck {len(jobs['stuck'])}; queues {report.get('queues')}")
    logs = report.get("logs", {})
    print(f"secrets in logs: {len(logs.get('leaks', []))}; self-exits: {report.get('self_exits')}")
    print(f"results: {path}")


def _range(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    return float(low), float(high or low)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=60)
    parser.add_argument("--kill-every", type=_range, default=(15.0, 30.0), help="seconds between kills, e.g. 15-30")
    parser.add_argument("--down", type=_range, default=(1.0, 5.0), help="seconds a killed component stays down")
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--gateways", type=int, choices=[1, 2], default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=1.0, help="photos per second")
    parser.add_argument("--discord-share", type=float, default=0.3)
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--deadline", type=float, default=180.0, help="seconds to wait for the last answers")
    parser.add_argument("--quiet", type=float, default=10.0, help="seconds to wait for late duplicates")
    parser.add_argument("--aimed-every", type=int, default=3, help="every n-th kill is an aimed one (0: none)")
    parser.add_argument("--targets", default="", help="random kills only among these, e.g. rabbitmq,discord,worker")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the work directory with every log")
    args = parser.parse_args(argv)
    config = Config(
        photos=args.photos, kill_every=args.kill_every, down=args.down, db=args.db, gateways=args.gateways,
        workers=args.workers, rate=args.rate, discord_share=args.discord_share, chats=args.chats, seed=args.seed,
        deadline_s=args.deadline, quiet_s=args.quiet, aimed_every=args.aimed_every, out=args.out, keep=args.keep,
        targets=tuple(t for t in args.targets.split(",") if t),
    )  # fmt: skip
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    report = asyncio.run(run(config))
    summary = report.get("summary", {})
    bad = summary.get("lost", 1) + summary.get("twice_unexplained", 1) + len(report.get("jobs", {}).get("stuck", [1]))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
