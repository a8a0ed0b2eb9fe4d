"""Private RabbitMQ and Postgres nodes that a test (or a benchmark) owns, and may kill at will.

The shared broker on 5672 and the shared Postgres on 5432 serve every test and every agent on this machine; a
test that needs to crash one gets its own instead:

- :class:`PrivateRabbitMQ` runs Debian's ``rabbitmq-server`` as a child process under a new node name, on free
  AMQP and distribution ports, with its database, logs, config, plugins file and Erlang cookie (``HOME``) in a
  temporary directory: nothing of the system node's is read or written.
- :class:`PrivatePostgres` ``initdb``\\ s a cluster in a temporary directory and runs ``postgres`` on a free port
  (trust authentication, sockets in that directory). As root it runs as the ``postgres`` user, since Postgres
  refuses to run as root.

RabbitMQ 3.10 caveat: a node SIGKILLed within about a second of a quorum queue's first declaration comes back
with that queue's Raft member empty (a follower at term 0 that never elects itself): ``basic.consume`` then
hangs for ever. Declare the topology first and call :meth:`PrivateRabbitMQ.checkpoint` (a graceful stop and
start of the app) before crashing the node.

Both run in their own session (process group): :meth:`kill` is SIGKILL of the whole tree (a crash, not a
shutdown), :meth:`start` starts them again on the same data and port and returns once they answer (an AMQP
connection, a Postgres query), polling with a deadline. :meth:`close` kills them and deletes the directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

POLL_S = 0.1  # readiness polling interval (each probe also has its own timeout)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NodeFailed(RuntimeError):
    """The node exited, or did not answer within its deadline; the message ends with its log's tail."""


class _Node:
    """A child process in its own session, with a log file, that can be SIGKILLed as a whole."""

    name = "node"

    def __init__(self, root: Path | None) -> None:
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix=f"detectbot-{self.name}-")) if root is None else root
        self.root.mkdir(parents=True, exist_ok=True)
        self.log = self.root / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.started_at: float | None = None  # time.monotonic() of the last start

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def _spawn(self, command: list[str], env: dict[str, str], owner: tuple[int, int] | None = None) -> None:
        user, group = owner or (None, None)
        with self.log.open("ab") as out:
            out.write(f"\n--- {time.strftime('%H:%M:%S')} starting {command[0]}\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                command, env=env, cwd=self.root, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, user=user, group=group,
            )  # fmt: skip
        self.started_at = time.monotonic()

    def kill(self) -> None:
        """SIGKILL the node's whole process tree (its session), as a crash would; returns once it is gone."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        self.kills += 1

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def _wait(self, probe: object, timeout: float, what: str) -> None:
        """Call the async ``probe()`` until it returns True, failing early if the process exits."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if not self.running:
                code = self.process.returncode if self.process is not None else None
                raise NodeFailed(f"{self.name} exited ({code}) before {what}:\n{self.tail()}")
            if await probe():  # type: ignore[operator]
                return
            if loop.time() > deadline:
                raise NodeFailed(f"{self.name} did not {what} within {timeout:g} s:\n{self.tail()}")
            await asyncio.sleep(POLL_S)  # polling readiness with a deadline

    def close(self) -> None:
        """Kill the node and remove its directory (if it made it)."""
        self.kill()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)


class PrivateRabbitMQ(_Node):
    """A RabbitMQ node of its own: ``await start()``, ``url``, ``kill()``, ``await restart()``, ``close()``."""

    name = "rabbitmq"
    SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")

    def __init__(self, root: Path | None = None, *, nodename: str | None = None) -> None:
        super().__init__(root)
        self.nodename = nodename or f"detectbot-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        if self.port in (5672, 25672) or self.dist_port in (5672, 25672):  # pragma: no cover - the system node's
            raise NodeFailed("a free port collided with the system RabbitMQ's")
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nlog.console = false\nlog.file.level = warning\n"
        )
        (self.root / "enabled_plugins").write_text("[].\n")  # no management plugin, no other plugin
        (self.root / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq/rabbitmq-env.conf (the system node's)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def env(self) -> dict[str, str]:
        root = self.root
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(root),  # the Erlang cookie is created here: not the system node's
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONF_ENV_FILE": str(root / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(root / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(root / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(root / "log"),
            "RABBITMQ_PID_FILE": str(root / "rabbitmq.pid"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(root / "plugins-expand"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_CRASH_DUMP_SECONDS": "0",
        }

    async def start(self, timeout: float = 90.0) -> None:
        """Start the node (again, on the same data and ports) and return once it takes AMQP connections."""
        if not self.running:
            if not self.SERVER.is_file():
                raise NodeFailed(f"{self.SERVER} is missing: install Debian's rabbitmq-server")
            self._spawn([str(self.SERVER)], self.env())
        await self.wait_ready(timeout)

    async def wait_ready(self, timeout: float = 90.0) -> None:
        await self._wait(self._answers, timeout, "take AMQP connections")

    async def _answers(self) -> bool:
        import aio_pika

        if not await _listening(self.port):  # aio-pika logs an error for every refused connection
            return False
        try:
            connection = await aio_pika.connect(self.url, timeout=2)
        except Exception:  # not up yet (refused, reset, or half-booted)
            return False
        await connection.close()
        return True

    async def restart(self, timeout: float = 90.0) -> None:
        self.kill()
        await self.start(timeout)

    async def checkpoint(self, timeout: float = 90.0) -> None:
        """A graceful ``stop_app`` + ``start_app``: what was declared so far is on disk before any crash."""
        for verb in ("stop_app", "start_app"):
            result = await asyncio.to_thread(self.ctl, verb)
            if result.returncode != 0:
                raise NodeFailed(f"rabbitmqctl {verb} failed: {result.stdout}{result.stderr}")
        await self.wait_ready(timeout)

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``rabbitmqctl`` against this node (its name and cookie; never the system node)."""
        cookie = (self.root / ".erlang.cookie").read_text().strip()
        command = ["/usr/lib/rabbitmq/bin/rabbitmqctl", "--erlang-cookie", cookie, "-n", self.nodename, *args]
        return subprocess.run(command, env=self.env(), capture_output=True, text=True, timeout=120)

    def log_files(self) -> list[Path]:
        return [self.log, *sorted((self.root / "log").glob("*.log"))]


async def _listening(port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def postgres_bin() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has ``postgres`` and ``initdb``."""
    candidates = Path("/usr/lib/postgresql").glob("*/bin")
    found = [p for p in candidates if (p / "postgres").is_file() and (p / "initdb").is_file()]
    if not found:
        raise NodeFailed("no Postgres server binaries under /usr/lib/postgresql/*/bin")
    return max(found, key=lambda p: [int(part) for part in re.findall(r"\d+", p.parent.name)] or [0])


class PrivatePostgres(_Node):
    """A Postgres cluster of its own: ``await start()``, ``url`` / ``dsn``, ``kill()``, ``await restart()``."""

    name = "postgres"

    def __init__(self, root: Path | None = None, *, database: str = "detectbot") -> None:
        super().__init__(root)
        self.database = database
        self.port = free_port()
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.bin = postgres_bin()
        self._user = _postgres_user()
        self._initialised = False

    @property
    def dsn(self) -> str:
        """For asyncpg / psql."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def url(self) -> str:
        """For SQLAlchemy (what ``DETECTBOT_DATABASE_URL`` takes)."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{self.database}"

    def _owner(self) -> tuple[int, int] | None:
        return (self._user.pw_uid, self._user.pw_gid) if self._user is not None else None

    def _initdb(self) -> None:
        if self._user is not None:
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        self.sockets.mkdir(exist_ok=True)
        if self._user is not None:
            os.chown(self.sockets, self._user.pw_uid, self._user.pw_gid)
        command = [str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                   "--no-sync", "--no-instructions"]  # fmt: skip
        result = subprocess.run(
            command, cwd=self.root, capture_output=True, text=True, timeout=120, env=self._env(),
            user=self._user.pw_uid if self._user else None, group=self._user.pw_gid if self._user else None,
        )  # fmt: skip
        if result.returncode != 0:
            raise NodeFailed(f"initdb failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        self._initialised = True

    def _env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}

    async def start(self, timeout: float = 60.0) -> None:
        """Start the cluster (again, on the same data and port) and return once ``database`` answers queries."""
        if not self._initialised:
            await asyncio.to_thread(self._initdb)
        if not self.running:
            command = [
                str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.sockets),
                "-c", "listen_addresses=127.0.0.1",
                "-c", "fsync=off",  # only processes crash here, never the machine: the OS keeps every write
                "-c", "max_connections=200",
                "-c", "log_min_messages=warning",
            ]  # fmt: skip
            self._spawn(command, self._env(), self._owner())
        await self._wait(self._server_answers, timeout, "take connections")
        await self._create_database()

    async def wait_ready(self, timeout: float = 60.0) -> None:
        await self._wait(self._answers, timeout, f"answer queries on {self.database}")

    async def _server_answers(self) -> bool:
        return await self._query("postgres")

    async def _answers(self) -> bool:
        return await self._query(self.database)

    async def _query(self, database: str) -> bool:
        import asyncpg

        try:
            conn = await asyncpg.connect(
                host="127.0.0.1", port=self.port, user="postgres", database=database, timeout=2
            )
        except Exception:  # not up yet: refused, "the database system is starting up", ...
            return False
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()
        return True

    async def _create_database(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(host="127.0.0.1", port=self.port, user="postgres", database="postgres", timeout=5)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", self.database):
                await conn.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await conn.close()

    async def restart(self, timeout: float = 60.0) -> None:
        self.kill()
        await self.start(timeout)

    def log_files(self) -> list[Path]:
        return [self.log]


def _postgres_user() -> pwd.struct_passwd | None:
    """As root, the ``postgres`` account to run as (Postgres refuses root); otherwise run as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise NodeFailed("running as root, and there is no 'postgres' user to run Postgres as") from None
