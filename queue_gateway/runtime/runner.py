"""Running a service as a process: start it, wait for SIGINT/SIGTERM (or for the service to end), stop it.

Every service (gateway, worker, both bots) has the same two coroutines, so one runner serves them all.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Protocol


class Service(Protocol):
    async def start(self) -> None:
        """Return once the service runs; raise when it cannot start."""
        ...

    async def stop(self) -> None:
        """Stop gracefully (finish what is in hand); safe to call after a failed or partial start."""
        ...

    async def wait_stopped(self) -> None:
        """Return (or raise) if the service ends on its own; otherwise wait forever."""
        ...


async def run_until_signalled(service: Service) -> None:
    """Start ``service``, run it until SIGINT/SIGTERM or until it ends by itself, then stop it."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await service.start()
        except BaseException:
            await service.stop()
            raise
        signalled = asyncio.create_task(stop.wait(), name="signal")
        ended = asyncio.create_task(service.wait_stopped(), name="service-ended")
        try:
            await asyncio.wait({signalled, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            signalled.cancel()
            ended.cancel()
            await service.stop()
        if ended.done() and not ended.cancelled():
            ended.result()  # the service's own error, if it ended with one
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
