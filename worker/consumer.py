"""The worker: consume job messages, fetch through signed URLs, detect in the pool, post back, then ack.

With the default prefetch of two jobs per inference slot, the next photo is fetched (and the last result
posted) while the model works on the current one, so a slot never waits on the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Literal

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel, AbstractRobustConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, ChannelInvalidStateError
from aiohttp import web
from pydantic import ValidationError

from queue_gateway.public.contract import JobMessage, ResultMeta
from queue_gateway.public.topology import declare
from queue_gateway.runtime import tracing
from queue_gateway.runtime.broker import connect_robust
from queue_gateway.runtime.config import safe_url
from queue_gateway.runtime.logs import job_context
from worker import clipjobs
from worker.errors import (
    BadClip,
    BadImage,
    BrokerUnreachable,
    Gone,
    InferenceCrashed,
    JobTimedOut,
    ModelUnavailable,
    Refused,
    Unreachable,
)
from worker.gateway import GatewayLink
from worker.inference import DetectorSpec, Inference, InferencePool, Job
from worker.metrics import WorkerMetrics, health_app
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)

RECONNECT_INTERVAL_S = 1.0  # aio-pika's default is 5 s: after a broker restart, work should flow within seconds


def detector_spec(settings: WorkerSettings, model: str) -> DetectorSpec:
    return DetectorSpec(
        model=model,
        data_dir=settings.data_dir,
        conf=settings.conf,
        iou=settings.iou,
        imgsz=settings.imgsz,
        max_det=settings.max_det,
        threads=settings.threads_per_slot(),
        auto_export=settings.auto_export,
        max_pixels=settings.max_pixels,
    )


class Worker:
    """Consumes the job queue: ``start()``, then ``stop()``.

    Built by ``worker.main.build_worker`` (the composition root; the tests build it the same way) from the
    inference pool (whose processes it starts and stops), the gateway link over the caller's HTTP session (which
    the caller closes), and its metrics. It opens its own AMQP connection at start, retrying for a while.
    """

    def __init__(
        self, settings: WorkerSettings, *, pool: InferencePool, gateway: GatewayLink, metrics: WorkerMetrics
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.gateway = gateway
        self.metrics = metrics
        self.topology = settings.topology()
        self.connection: AbstractRobustConnection | None = None
        self.channel: AbstractRobustChannel | None = None
        self.queue: AbstractQueue | None = None  # kept referenced: aio-pika restores only referenced consumers
        self.consumer_tag: str | None = None
        self.consuming = asyncio.Event()
        self.processed = 0
        self.problem: str | None = "starting: loading the model"
        self.http_port: int | None = None
        self._stop_requested = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._http_runner: web.AppRunner | None = None
        self._pool_started = False
        self._stopped = False

    # --- lifecycle ------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop taking jobs; ``run()`` returns once the jobs in hand are finished."""
        self._stop_requested.set()

    async def run(self) -> None:
        """Start, work until ``request_stop()``, then stop gracefully."""
        try:
            await self.start()
            await self._stop_requested.wait()
        finally:
            await self.stop()

    async def start(self) -> None:
        """Serve health, reach the broker (retrying for a while), warm the model, then consume."""
        await self._serve_http()
        connection = await self._connect()
        self.connection = connection
        self.problem = "starting: loading the model"
        log.info(
            "%d CPU(s) for this worker: %d inference slot(s) of %d thread(s)",
            self.settings.cpus, self.settings.slots, self.settings.threads_per_slot(),
        )  # fmt: skip
        try:
            await self.pool.start()
        except ModelUnavailable as exc:
            raise ModelUnavailable(f"the model is not available: {exc}") from None
        self._pool_started = True
        self.problem = None
        self.metrics.model.info({"name": self.pool.model_name, "slots": str(self.settings.slots)})
        self.channel = await connection.channel()
        await self.channel.set_qos(prefetch_count=self.settings.prefetch_count())
        declared = await declare(self.channel, self.topology)
        self.queue = declared.queue
        self.consumer_tag = await self.queue.consume(self._on_message)
        self.consuming.set()
        log.info(
            "worker %s consuming %s at %s with %d slot(s) of %s, gateway %s",
            self.settings.name, self.topology.queue, safe_url(self.settings.amqp_url), self.settings.slots,
            self.pool.model_name, self.settings.gateway_url,
        )  # fmt: skip

    async def stop(self) -> None:
        """Stop consuming, finish the jobs in hand, and close everything (safe after a partial start)."""
        if self._stopped:
            return
        self._stopped = True
        if self.queue is not None and self.consumer_tag is not None:
            log.info("stopping: no new jobs; finishing %d in hand", len(self._in_flight))
            with contextlib.suppress(Exception):
                await self.queue.cancel(self.consumer_tag)
        self.consuming.clear()
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        if self.connection is not None:
            await self.connection.close()
        if self._pool_started:
            await self.pool.close()
        await self._stop_http()
        if self.consumer_tag is not None:
            log.info("worker stopped after %d jobs", self.processed)

    async def wait_stopped(self) -> None:
        await self._stop_requested.wait()

    def readiness(self) -> str | None:
        """None when ready (model warm, consuming); otherwise why not."""
        if self.problem:
            return self.problem
        if self.connection is None or self.connection.is_closed or not self.consuming.is_set():
            return "not consuming: no broker connection"
        return None

    async def _connect(self) -> AbstractRobustConnection:
        """The broker, retried for ``broker_retry_s`` at start (afterwards aio-pika reconnects by itself)."""
        settings = self.settings
        self.problem = "starting: connecting to the broker"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.broker_retry_s
        delay = 0.5
        while True:
            try:
                return await connect_robust(
                    settings.amqp_url,
                    heartbeat=settings.heartbeat_s,
                    reconnect_interval=RECONNECT_INTERVAL_S,
                    client_properties={"connection_name": settings.name},
                )
            except CONNECTION_EXCEPTIONS as exc:
                if loop.time() + delay > deadline:
                    raise BrokerUnreachable(
                        f"cannot reach the broker at {safe_url(settings.amqp_url)} ({exc or type(exc).__name__}); "
                        "check DETECTBOT_AMQP_URL and that RabbitMQ is running"
                    ) from None
                log.warning("broker %s not reachable yet; retrying (DETECTBOT_AMQP_URL)", safe_url(settings.amqp_url))
                await asyncio.sleep(delay)  # a start-up retry pause, not a wait for work
                delay = min(delay * 2, 5.0)

    async def _serve_http(self) -> None:
        if self.settings.http_port is None:
            return
        self._http_runner = web.AppRunner(health_app(self.metrics, self.readiness), access_log=None)
        await self._http_runner.setup()
        site = web.TCPSite(self._http_runner, self.settings.http_host, self.settings.http_port)
        await site.start()
        self.http_port = int(self._http_runner.addresses[0][1])
        log.info("worker health and metrics on http://%s:%d", self.settings.http_host, self.http_port)

    async def _stop_http(self) -> None:
        if self._http_runner is not None:
            await self._http_runner.cleanup()
            self._http_runner = None

    # --- jobs ---------------------------------------------------------------------------------------

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if self._stop_requested.is_set() or self._stopped:
            await _settle(message, "nack")  # arrived after stop: hand it straight back
            return
        task = asyncio.create_task(self._handle(message), name=f"job-{message.message_id}")
        self._in_flight.add(task)
        self.metrics.in_flight.set(len(self._in_flight))
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self.metrics.in_flight.set(len(self._in_flight))

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        try:
            job = JobMessage.model_validate_json(message.body)
        except ValidationError as exc:
            log.error("unreadable job message %s rejected: %s", message.message_id, exc.errors()[0]["msg"])
            await _settle(message, "reject")
            return
        with job_context(job.job_id), tracing.span("worker job", parent=_headers(message), job_id=job.job_id):
            try:
                await self._process(job, message)
            except Exception:
                log.exception("job %s: unexpected error; handing it back to the queue", job.job_id)
                await self._give_back(message, job.job_id)

    async def _process(self, job: JobMessage, message: AbstractIncomingMessage) -> None:
        gateway = self.gateway
        try:
            data = await gateway.fetch_input(job.input_url, delivery=_delivery_number(message))
        except Gone:
            log.info("job %s: nothing left to do (finished, cancelled or deleted)", job.job_id)
            await _settle(message, "ack")
            return
        except Refused as exc:
            log.error("job %s: the gateway refused the input link (%s)", job.job_id, exc)
            await _settle(message, "reject")
            return
        except Unreachable as exc:
            log.warning("job %s: %s", job.job_id, exc)
            await self._give_back(message, job.job_id)
            return
        delivery = _delivery_number(message)
        log.debug("job %s: detecting (%d bytes, delivery %d)", job.job_id, len(data), delivery)
        meta, image = await self._infer(job, data, message)
        if meta is None:
            return
        try:
            await gateway.post_result(job.result_url, meta, image)
        except Gone:
            pass  # the job went away meanwhile (deleted): nothing to keep
        except Refused as exc:
            log.error("job %s: the gateway refused the result (%s)", job.job_id, exc)
            await _settle(message, "reject")
            return
        except Unreachable as exc:
            log.warning("job %s: result not delivered: %s", job.job_id, exc)
            await self._give_back(message, job.job_id)
            return
        await _settle(message, "ack")
        self.processed += 1
        self.metrics.jobs.labels(outcome="done" if meta.ok else "failed").inc()
        log.info(
            "job %s: %s (%d detections; %d bytes in, %d out; delivery %d)",
            job.job_id, "done" if meta.ok else meta.error_code, len(meta.detections), len(data), len(image or b""),
            delivery,
        )  # fmt: skip

    async def _infer(
        self, job: JobMessage, data: bytes, message: AbstractIncomingMessage
    ) -> tuple[ResultMeta | None, bytes | None]:
        """Run the model; a final failure becomes a failure result, a crash or a timeout hands the job back."""
        params = job.params
        base: dict[str, Any] = {"worker": self.settings.name, "model": self.pool.model_name}
        if job.media == "clip":
            return await self._infer_clip(job, data, message, base)
        request = Job(
            data,
            conf=params.conf,
            max_det=params.max_det,
            classes=tuple(params.classes) if params.classes is not None else None,
            language=params.language,
        )
        try:
            result: Inference = await self.pool.detect(request)
        except BadImage as exc:
            return ResultMeta(ok=False, error_code="bad_image", error=str(exc)[:500], **base), None
        except (InferenceCrashed, JobTimedOut) as exc:
            await self._hand_back(job, exc, message, base)
            return None, None
        except Exception as exc:  # the model raised: final for this job, told to its sender
            log.exception("job %s: the model failed", job.job_id)
            return _model_error(exc, base), None
        self.metrics.inference_seconds.observe(result.inference_ms / 1000)
        meta = ResultMeta(
            ok=True,
            detections=result.detections,
            inference_ms=result.inference_ms,
            conf=result.conf,
            **{**base, "model": result.model},
        )
        return meta, result.image

    async def _infer_clip(
        self, job: JobMessage, data: bytes, message: AbstractIncomingMessage, base: dict[str, Any]
    ) -> tuple[ResultMeta | None, bytes | None]:
        """A GIF or short clip (``worker.clipjobs``): a refusal is final and told to its sender; a crash or a run past
        the deadline hands it back, as for a photo."""
        try:
            result = await clipjobs.run_clip(self.pool, self.gateway, job, data, self.settings)
        except BadClip as exc:
            log.info("job %s: clip refused (%s)", job.job_id, exc)
            return clipjobs.refusal_meta(exc, base), None
        except (InferenceCrashed, JobTimedOut) as exc:
            await self._hand_back(job, exc, message, base)
            return None, None
        except Exception as exc:  # the model raised: final for this job, told to its sender
            log.exception("job %s: the model failed on a clip", job.job_id)
            return _model_error(exc, base), None
        self.metrics.inference_seconds.observe(result.inference_ms / 1000)
        return clipjobs.clip_meta(result, base), result.animation

    async def _hand_back(
        self,
        job: JobMessage,
        exc: InferenceCrashed | JobTimedOut,
        message: AbstractIncomingMessage,
        base: dict[str, Any],
    ) -> None:
        """The slot crashed or ran past the deadline: the job goes back to the queue (a timeout says why first)."""
        timed_out = isinstance(exc, JobTimedOut)
        log.error("job %s: %s (delivery %d)", job.job_id, exc, _delivery_number(message))
        self.metrics.jobs.labels(outcome="timeout" if timed_out else "crashed").inc()
        if timed_out:
            await self._note(job, ResultMeta(ok=False, final=False, error_code="timeout", error=str(exc), **base))
        await self._give_back(message, job.job_id)

    async def _note(self, job: JobMessage, meta: ResultMeta) -> None:
        """Tell the gateway why this attempt failed (the job stays in the queue); best effort."""
        with contextlib.suppress(Gone, Refused, Unreachable):
            await self.gateway.post_result(job.result_url, meta, None, retry=False)

    async def _give_back(self, message: AbstractIncomingMessage, job_id: str) -> None:
        """Requeue, unless this was the last delivery the queue allows: then dead-letter it now."""
        if _delivery_number(message) >= self.settings.delivery_limit:
            log.error("job %s: delivery %d was the last; dead-lettering", job_id, _delivery_number(message))
            await _settle(message, "reject")
        else:
            await _settle(message, "nack")


async def _settle(message: AbstractIncomingMessage, outcome: Literal["ack", "nack", "reject"]) -> None:
    """Ack, requeue (nack) or dead-letter (reject) — unless the channel died meanwhile: then the broker
    redelivers the message after the reconnect, and the gateway answers 410 for a job that is already done."""
    try:
        if outcome == "ack":
            await message.ack()
        elif outcome == "nack":
            await message.nack(requeue=True)
        else:
            await message.reject(requeue=False)
    except (ChannelInvalidStateError, *CONNECTION_EXCEPTIONS) as exc:
        log.warning(
            "job %s: could not %s it (%s); the broker will deliver it again",
            message.message_id,
            outcome,
            type(exc).__name__,
        )


def _headers(message: AbstractIncomingMessage) -> dict[str, str]:
    return {str(key): str(value) for key, value in (message.headers or {}).items() if isinstance(value, str)}


def _delivery_number(message: AbstractIncomingMessage) -> int:
    """1 for the first delivery; quorum queues count earlier ones in ``x-delivery-count``."""
    count = (message.headers or {}).get("x-delivery-count")
    return int(count) + 1 if isinstance(count, int) else 1


def _model_error(exc: Exception, base: dict[str, Any]) -> ResultMeta:
    """The model raised: a final error for the job, told to its sender in words that name only the error's type."""
    return ResultMeta(
        ok=False, error_code="model_error", error=f"the detector could not process it ({type(exc).__name__})", **base
    )
