"""A broker that cannot be reached leaves no connection behind: aio-pika would close an abandoned one from its
``__del__`` at a random later moment, and without a running loop then, its ``close()`` is never awaited."""

from __future__ import annotations

import gc

import aio_pika
import pytest
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from queue_gateway.runtime.broker import connect_robust
from tests.nodes import free_port


def open_connections() -> set[int]:
    gc.collect()
    return {id(o) for o in gc.get_objects() if isinstance(o, aio_pika.RobustConnection) and not o.is_closed}


async def test_a_failed_first_attempt_is_closed_not_left_to_the_garbage_collector() -> None:
    before = open_connections()
    with pytest.raises(CONNECTION_EXCEPTIONS):
        await connect_robust(f"amqp://guest:guest@127.0.0.1:{free_port()}/", reconnect_interval=1.0)
    assert open_connections() - before == set()
