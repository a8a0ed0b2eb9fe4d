"""The gateway as a long-running service: the app on its port, started and stopped by the shared runner."""

from __future__ import annotations

import asyncio
import errno
import logging
from typing import Any

from aiohttp import web

from db.engine import create_engine
from queue_gateway.app import StartupError, create_app, database_name, prepare_database
from queue_gateway.runtime.config import safe_url
from queue_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


def server_options(settings: GatewaySettings) -> dict[str, Any]:
    """How the HTTP server treats connections: an idle one (or one still sending its headers) is closed after
    ``keepalive_timeout_s`` (aiohttp's default keeps it an hour); a body must arrive within ``upload_timeout_s``
    (the handlers' own bound)."""
    return {"keepalive_timeout": settings.keepalive_timeout_s, "shutdown_timeout": 10}


class GatewayService:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        settings = self.settings
        self._runner = web.AppRunner(create_app(settings), access_log=None, **server_options(settings))
        await self._runner.setup()
        site = web.TCPSite(self._runner, settings.host, settings.port)
        try:
            await site.start()
        except OSError as exc:
            reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror})"
            raise StartupError(
                f"port {settings.port} on {settings.host} {reason} (set DETECTBOT_PORT or --port)"
            ) from None
        self.port = int(self._runner.addresses[0][1])
        log.info(
            "gateway %s listening on http://%s:%d — database %s, broker %s (queue %s)",
            settings.name, settings.host, self.port, database_name(settings.database_url),
            safe_url(settings.amqp_url), settings.queue,
        )  # fmt: skip

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_stopped(self) -> None:
        await asyncio.Event().wait()  # the gateway runs until it is told to stop


async def migrate_database(settings: GatewaySettings) -> None:
    """``detectbot migrate``: upgrade the database, retrying briefly while it is not reachable yet."""
    engine = create_engine(settings.database_url)
    try:
        await prepare_database(engine, settings.model_copy(update={"auto_migrate": True}))
    finally:
        await engine.dispose()


async def database_status(settings: GatewaySettings) -> str:
    """``detectbot doctor``: "at the current schema", or what is wrong (raises StartupError when unreachable)."""
    from db.migrate import current_revision, head_revision

    engine = create_engine(settings.database_url)
    try:
        try:
            current = await current_revision(engine)
        except Exception as exc:
            raise StartupError(
                f"cannot reach the database {database_name(settings.database_url)} ({type(exc).__name__}); "
                "check DETECTBOT_DATABASE_URL and that the database is running"
            ) from None
    finally:
        await engine.dispose()
    head = head_revision()
    if current == head:
        return f"{database_name(settings.database_url)}, at the current schema ({head})"
    raise StartupError(
        f"{database_name(settings.database_url)} is at schema {current or 'none'}, not {head}: run `detectbot migrate`"
    )
