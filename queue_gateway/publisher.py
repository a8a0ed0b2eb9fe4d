"""The gateway's side of the broker: one robust connection, a confirming channel, one publish function."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aio_pika
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, DeliveryError, PublishError
from yarl import URL

from queue_gateway.broker import job_message
from queue_gateway.contract import DetectParams, JobMessage
from queue_gateway.signing import Action, Signer
from queue_gateway.topology import Declared, Topology, declare

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """The broker refused the job: the queue is at its length limit."""


class BrokerUnavailable(Exception):
    """No broker connection right now; the outbox keeps the job until there is one."""


def safe_url(url: str) -> str:
    """The AMQP URL without its password, for logs."""
    return str(URL(url).with_password(None)) if URL(url).password else url


class BrokerLink:
    """Connects in the background (retrying), declares the topology, and keeps the objects referenced.

    aio-pika restores channels and queues after a reconnect only while they are still referenced.
    """

    def __init__(self, url: str, topology: Topology, *, retry_interval: float = 2.0) -> None:
        self._url = url
        self.topology = topology
        self._retry_interval = retry_interval
        self.connection: AbstractRobustConnection | None = None
        self.channel: AbstractRobustChannel | None = None
        self.declared: Declared | None = None
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect_forever(), name="broker-connect")

    async def _connect_forever(self) -> None:
        while True:
            try:
                connection = await aio_pika.connect_robust(self._url)
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                self.declared = await declare(channel, self.topology)
            except CONNECTION_EXCEPTIONS as exc:
                log.warning(
                    "broker %s not reachable (%s); retrying in %.0f s",
                    safe_url(self._url),
                    exc,
                    self._retry_interval,
                )
                await asyncio.sleep(self._retry_interval)
                continue
            self.connection, self.channel = connection, channel
            self.connected.set()
            log.info("connected to broker %s, queue %s", safe_url(self._url), self.topology.queue)
            return

    @property
    def is_ready(self) -> bool:
        return (
            self.connection is not None
            and not self.connection.is_closed
            and self.channel is not None
            and not self.channel.is_closed
        )

    async def queue_stats(self) -> tuple[int, int] | None:
        """(messages ready, consumers) of the job queue, or None without a broker connection."""
        if self.channel is None or not self.is_ready:
            return None
        try:
            underlay = await self.channel.get_underlay_channel()
            declared = await underlay.queue_declare(self.topology.queue, passive=True)
        except CONNECTION_EXCEPTIONS:
            return None
        return int(declared.message_count or 0), int(declared.consumer_count or 0)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.connection is not None:
            await self.connection.close()


class Publisher:
    """Builds the job message (signed URLs, never bytes) and publishes it with a confirm."""

    def __init__(self, link: BrokerLink, signer: Signer, *, url_ttl_s: int, timeout_s: float) -> None:
        self._link = link
        self._signer = signer
        self._url_ttl_s = url_ttl_s
        self._timeout_s = timeout_s

    def message_for(self, job_id: str, params: DetectParams) -> JobMessage:
        input_q = self._signer.query(Action.INPUT, job_id, self._url_ttl_s)
        result_q = self._signer.query(Action.RESULT, job_id, self._url_ttl_s)
        return JobMessage(
            job_id=job_id,
            input_url=f"/v1/worker/jobs/{job_id}/input?{input_q}",
            result_url=f"/v1/worker/jobs/{job_id}/result?{result_q}",
            params=params,
        )

    async def publish(self, job_id: str, params: DetectParams) -> None:
        """Return once the broker confirmed the message; raise QueueFull or BrokerUnavailable otherwise."""
        declared = self._link.declared
        if declared is None or not self._link.is_ready:
            raise BrokerUnavailable("not connected to the broker")
        message = job_message(self.message_for(job_id, params))
        try:
            await declared.exchange.publish(message, routing_key=self._link.topology.queue, timeout=self._timeout_s)
        except DeliveryError as exc:  # basic.nack: x-max-length with reject-publish
            raise QueueFull(str(exc)) from exc
        except (PublishError, TimeoutError, *CONNECTION_EXCEPTIONS) as exc:
            raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc


@contextlib.asynccontextmanager
async def broker_link(url: str, topology: Topology) -> AsyncIterator[BrokerLink]:
    link = BrokerLink(url, topology)
    await link.start()
    try:
        yield link
    finally:
        await link.close()
