"""Run each long-lived service until SIGINT/SIGTERM, with a graceful stop."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from queue_gateway.app import create_app
from queue_gateway.settings import GatewaySettings
from worker.consumer import Worker
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)


def run_gateway(settings: GatewaySettings) -> None:
    web.run_app(
        create_app(settings), host=settings.host, port=settings.port, print=None, access_log=None, shutdown_timeout=10
    )


def resolve_model(settings: WorkerSettings) -> str:
    if settings.model:
        return settings.model
    from worker.models import default_model_spec

    return default_model_spec(settings.data_dir)


async def run_worker(settings: WorkerSettings) -> None:
    """Consume until SIGTERM/SIGINT; jobs in hand are finished and acked before the process exits."""
    worker = Worker(settings, model=resolve_model(settings))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, worker.stop)
    try:
        await worker.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    log.info("worker stopped after %d jobs", worker.processed)
