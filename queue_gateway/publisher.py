"""The gateway's side of the broker: one robust connection, a confirming channel, and the job message.

The message is persistent JSON whose ``message_id`` is the job id; it carries signed URLs, never image bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable

import aio_pika
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection, DeliveryMode
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, DeliveryError, PublishError

from queue_gateway.public.clips import RESULT_MAX_BYTES, prefer_for
from queue_gateway.public.contract import ClipReturn, DetectParams, JobMessage
from queue_gateway.public.topology import Declared, Topology, declare
from queue_gateway.runtime import tracing
from queue_gateway.runtime.broker import connect_robust
from queue_gateway.runtime.config import safe_url
from queue_gateway.runtime.tracing import TRACEPARENT
from queue_gateway.signing import Action, Signer

log = logging.getLogger(__name__)

RECONNECT_INTERVAL_S = 1.0  # aio-pika's default is 5 s: after a broker restart, work should flow within seconds


class QueueFull(Exception):
    """The broker refused the job: the queue is at its length limit."""


class BrokerUnavailable(Exception):
    """No broker connection right now; the job stays ``received`` until the relay publishes it."""


def job_message(body: JobMessage, *, traceparent: str | None = None) -> aio_pika.Message:
    """A persistent message whose ``message_id`` is the job id (and the job's trace in its headers)."""
    return aio_pika.Message(
        body=body.model_dump_json().encode(),
        content_type="application/json",
        delivery_mode=DeliveryMode.PERSISTENT,
        message_id=body.job_id,
        type="detectbot.job.v1",
        headers={TRACEPARENT: traceparent} if traceparent else None,
    )


class BrokerLink:
    """Connects in the background (retrying), declares the topology, and keeps the objects referenced.

    aio-pika restores channels and queues after a reconnect only while they are still referenced.
    ``on_connected`` callbacks run after the first connection and after every reconnect.
    """

    def __init__(self, url: str, topology: Topology, *, retry_interval: float = 2.0) -> None:
        self._url = url
        self.topology = topology
        self._retry_interval = retry_interval
        self.connection: AbstractRobustConnection | None = None
        self.channel: AbstractRobustChannel | None = None
        self.declared: Declared | None = None
        self.connected = asyncio.Event()
        self.on_connected: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect_forever(), name="broker-connect")

    async def _connect_forever(self) -> None:
        while True:
            try:
                connection = await connect_robust(self._url, reconnect_interval=RECONNECT_INTERVAL_S)
            except CONNECTION_EXCEPTIONS as exc:
                log.warning("broker %s not reachable (%s); retrying in %.0f s (DETECTBOT_AMQP_URL)",
                            safe_url(self._url), exc, self._retry_interval)  # fmt: skip
                await asyncio.sleep(self._retry_interval)  # a retry pause, not a wait for work
                continue
            try:
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                self.declared = await declare(channel, self.topology)
            except CONNECTION_EXCEPTIONS as exc:
                log.warning("broker %s: could not declare the queue (%s); retrying", safe_url(self._url), exc)
                await connection.close()
                await asyncio.sleep(self._retry_interval)
                continue
            self.connection, self.channel = connection, channel
            connection.reconnect_callbacks.add(lambda *_: self._announce())
            self.connected.set()
            log.info("connected to broker %s, queue %s", safe_url(self._url), self.topology.queue)
            self._announce()
            return

    def _announce(self) -> None:
        for callback in self.on_connected:
            callback()

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


def clip_return(media: str, platform: str) -> ClipReturn | None:
    """How a clip job's animation goes back to where it came from (None for a photo): the smallest of GIF and MP4
    on Discord, MP4 elsewhere, under the size every chat takes."""
    if media != "clip":
        return None
    return ClipReturn(prefer=prefer_for(platform), max_bytes=RESULT_MAX_BYTES)


def worker_link(signer: Signer, action: Action, *, job_id: str, link_gen: int, ttl_s: int) -> str:
    """``gen=…&exp=…&sig=…``: the query of a worker link, signed over the job id and its link generation."""
    return f"gen={link_gen}&" + signer.query(action, f"{job_id}.{link_gen}", ttl_s)


class Publisher:
    """Builds the job message (signed URLs, never bytes) and publishes it with a confirm."""

    def __init__(self, link: BrokerLink, signer: Signer, *, url_ttl_s: int, timeout_s: float) -> None:
        self._link = link
        self._signer = signer
        self._url_ttl_s = url_ttl_s
        self._timeout_s = timeout_s

    def message_for(
        self, job_id: str, params: DetectParams, *, link_gen: int = 0, clip: ClipReturn | None = None
    ) -> JobMessage:
        """The job's message: its worker links are bound to the job, its link generation (a requeue makes the old
        ones useless) and an expiry. A clip's says how its animation goes back, and where to report progress."""
        link = functools.partial(worker_link, self._signer, job_id=job_id, link_gen=link_gen, ttl_s=self._url_ttl_s)
        return JobMessage(
            job_id=job_id,
            input_url=f"/v1/worker/jobs/{job_id}/input?{link(Action.INPUT)}",
            result_url=f"/v1/worker/jobs/{job_id}/result?{link(Action.RESULT)}",
            params=params,
            media="clip" if clip is not None else "photo",
            clip=clip,
            progress_url=f"/v1/worker/jobs/{job_id}/progress?{link(Action.PROGRESS)}" if clip is not None else None,
        )

    async def publish(
        self,
        job_id: str,
        params: DetectParams,
        *,
        link_gen: int = 0,
        traceparent: str | None = None,
        clip: ClipReturn | None = None,
    ) -> None:
        """Return once the broker confirmed the message; raise QueueFull or BrokerUnavailable otherwise."""
        declared = self._link.declared
        if declared is None or not self._link.is_ready:
            raise BrokerUnavailable("not connected to the broker")
        body = self.message_for(job_id, params, link_gen=link_gen, clip=clip)
        message = job_message(body, traceparent=traceparent)
        try:
            # under the photo's trace, so that the AMQP instrumentation's publish span (tracing on) joins it
            with tracing.span("gateway publish", parent=traceparent, job_id=job_id):
                await declared.exchange.publish(message, routing_key=self._link.topology.queue, timeout=self._timeout_s)
        except DeliveryError as exc:  # basic.nack: x-max-length with reject-publish
            raise QueueFull(str(exc)) from exc
        except (PublishError, TimeoutError, *CONNECTION_EXCEPTIONS) as exc:
            raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except RuntimeError as exc:  # aio-pika, mid-reconnect: "channel closed" and friends
            raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc
