"""Tracing (DETECTBOT_TRACING): one trace per photo, from the bot through the gateway, the broker and the worker
to the delivery, seen with OpenTelemetry's in-memory exporter."""

from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from queue_gateway.runtime import tracing
from tests.conftest import eventually
from tests.images import jpeg
from tests.telegram_stack import Stack

EXPORTER = InMemorySpanExporter()


async def test_one_trace_follows_a_photo_from_the_bot_to_the_delivery(start_telegram) -> None:
    tracing.setup("tests", "otlp", exporter=EXPORTER)  # process-wide, as each service's main() does
    EXPORTER.clear()
    stack: Stack = await start_telegram()
    stack.fake.send_photo_update(4242, data=jpeg(320, 240))
    await stack.delivered("sendPhoto")

    async def delivery_traced() -> bool:
        return any(s.name == "gateway deliver" for s in EXPORTER.get_finished_spans())

    await eventually(delivery_traced, timeout=10, what="the delivery's span")
    spans = EXPORTER.get_finished_spans()
    roots = [s for s in spans if s.name == "telegram photo"]
    assert len(roots) == 1, [s.name for s in spans]
    trace_id = roots[0].context.trace_id
    names = {s.name for s in spans if s.context.trace_id == trace_id}
    assert {
        "telegram photo",
        "gateway POST /v1/jobs",
        "worker job",
        "gateway GET /v1/worker/jobs/{job_id}/input",
        "gateway POST /v1/worker/jobs/{job_id}/result",
        "gateway deliver",
    } <= names, names
    # the AMQP hop, from OpenTelemetry's aio-pika instrumentation (the tracing extra): publish and consume
    kinds = {s.kind for s in spans if s.context.trace_id == trace_id}
    assert {SpanKind.PRODUCER, SpanKind.CONSUMER} <= kinds, sorted((s.name, s.kind.name) for s in spans)
    assert "gateway publish" in names
    job_spans = [s for s in spans if s.context.trace_id == trace_id and s.attributes and "job_id" in s.attributes]
    assert len({s.attributes["job_id"] for s in job_spans if s.attributes}) == 1
