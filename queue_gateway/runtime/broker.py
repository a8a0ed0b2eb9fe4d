"""The one way every service connects to RabbitMQ: aio-pika's robust connection, with its failed attempts closed."""

from __future__ import annotations

import contextlib
from typing import Any

import aio_pika
from aio_pika import RobustConnection
from aio_pika.abc import AbstractRobustConnection


async def connect_robust(url: str, **options: Any) -> AbstractRobustConnection:
    """``aio_pika.connect_robust(url, **options)``; a connection whose first attempt failed is closed here.

    Left to the garbage collector, aio-pika closes it from ``__del__`` with ``asyncio.ensure_future``, which, when
    no loop is running at that moment, leaves its ``close()`` coroutine never awaited (a warning, at a random time).
    """
    made: list[RobustConnection] = []

    def kept(*args: Any, **kwargs: Any) -> RobustConnection:
        connection = RobustConnection(*args, **kwargs)
        made.append(connection)
        return connection

    try:
        return await aio_pika.connect_robust(url, connection_class=kept, **options)
    except BaseException:
        for connection in made:
            with contextlib.suppress(Exception):
                await connection.close()
        raise
