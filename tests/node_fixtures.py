"""Fixtures for the private service nodes of :mod:`tests.nodes`: a RabbitMQ and a Postgres that one test owns.

Use them where a test crashes the broker or the database; everything else runs against the shared ones
(:mod:`tests.services`). Each fixture starts its node before the test and kills and deletes it afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.nodes import PrivatePostgres, PrivateRabbitMQ


@pytest.fixture
async def private_rabbitmq() -> AsyncIterator[PrivateRabbitMQ]:
    """A RabbitMQ node of this test's own, running and answering; ``kill()`` and ``start()`` it at will."""
    node = PrivateRabbitMQ()
    try:
        await node.start()
        yield node
    finally:
        node.close()


@pytest.fixture
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    """A Postgres cluster of this test's own (database ``detectbot``), running; ``kill()`` and ``start()`` it."""
    node = PrivatePostgres()
    try:
        await node.start()
        yield node
    finally:
        node.close()
