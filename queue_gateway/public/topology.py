"""RabbitMQ topology, declared the same way by the gateway and the workers.

Durable direct exchange → quorum queue ``<queue>`` (explicit delivery limit, bounded length with
``reject-publish``) → dead letters, at least once, to the quorum queue ``<queue>.dead``.
Either side may start first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # aio-pika is imported only by the services that talk to the broker
    from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
    from pamqp.common import FieldTable


@dataclass(frozen=True, slots=True)
class Topology:
    queue: str
    delivery_limit: int = 3
    max_length: int = 10_000

    @property
    def exchange(self) -> str:
        return self.queue.removesuffix(".jobs") or self.queue

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.queue}.dead"

    def queue_arguments(self) -> FieldTable:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-max-length": self.max_length,
            "x-overflow": "reject-publish",
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.dead_letter_queue,
            "x-dead-letter-strategy": "at-least-once",
        }


@dataclass(slots=True)
class Declared:
    exchange: AbstractExchange
    queue: AbstractQueue
    dead_letters: AbstractQueue


async def declare(channel: AbstractChannel, topology: Topology) -> Declared:
    """Declare (idempotently) the exchange, the job queue and the dead-letter queue."""
    import aio_pika

    exchange = await channel.declare_exchange(topology.exchange, aio_pika.ExchangeType.DIRECT, durable=True)
    dead = await channel.declare_queue(topology.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"})
    queue = await channel.declare_queue(topology.queue, durable=True, arguments=topology.queue_arguments())
    await queue.bind(exchange, routing_key=topology.queue)
    return Declared(exchange, queue, dead)
