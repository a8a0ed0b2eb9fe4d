"""Optional OpenTelemetry tracing: one trace per photo, across bot → gateway → broker → worker → delivery.

Off by default (``DETECTBOT_TRACING=off``); ``console`` prints spans, ``otlp`` sends them to the collector named
by the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` (install the ``tracing`` extra). The context travels as W3C
``traceparent``: in HTTP headers between the services, in the job message's headers through the broker, and in the
job row for the delivery that comes later. With tracing off (or the extra not installed), every function here
costs next to nothing.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator, Mapping
from typing import Any

from queue_gateway.runtime.errors import CannotStart

TRACEPARENT = "traceparent"
_state: dict[str, Any] = {}  # "provider": the process's TracerProvider, once set up


def available() -> bool:
    return importlib.util.find_spec("opentelemetry") is not None


def setup(service: str, mode: str, *, exporter: Any = None) -> None:
    """Trace this process as ``detectbot-<service>``; ``exporter`` (tests: an in-memory one) overrides ``mode``."""
    if mode == "off" and exporter is None:
        return
    if "provider" in _state:
        return  # the process-global provider is set once; later services of this process share it
    if not importlib.util.find_spec("opentelemetry.sdk"):
        raise CannotStart(
            "tracing needs the tracing extra: pip install 'detectbot[tracing]' (or DETECTBOT_TRACING=off)"
        )
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"detectbot-{service}"}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif mode == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _state["provider"] = provider
    _instrument_libraries()


def _instrument_libraries() -> None:
    """AMQP spans (publish, and each delivery a consumer takes) from OpenTelemetry's aio-pika instrumentation,
    where it is installed (the tracing extra). It carries the context in the message headers, as we do.

    SQLAlchemy's instrumentation is not used: its releases support SQLAlchemy below 2.1 only (it refuses to
    instrument the 2.1 this project runs), so the database work shows inside the gateway's request spans."""
    if importlib.util.find_spec("opentelemetry.instrumentation.aio_pika") is None:
        return
    from opentelemetry.instrumentation.aio_pika import AioPikaInstrumentor

    instrumentor = AioPikaInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


def enabled() -> bool:
    return "provider" in _state


@contextlib.contextmanager
def span(name: str, *, parent: str | Mapping[str, str] | None = None, **attributes: Any) -> Iterator[None]:
    """A span named ``name`` around the block, under ``parent`` (a traceparent, or headers) or the current one."""
    if not enabled():
        yield
        return
    from opentelemetry import trace
    from opentelemetry.propagate import extract

    carrier = {TRACEPARENT: parent} if isinstance(parent, str) else dict(parent or {})
    context = extract(carrier) if carrier.get(TRACEPARENT) else None
    tracer = trace.get_tracer("detectbot")
    clean = {key: value for key, value in attributes.items() if value is not None}
    with tracer.start_as_current_span(name, context=context, attributes=clean):
        yield


def headers() -> dict[str, str]:
    """The current span's context as HTTP or AMQP headers (empty with tracing off)."""
    if not enabled():
        return {}
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier


def traceparent() -> str | None:
    """The current span's ``traceparent``, to keep with a job for work that comes later."""
    return headers().get(TRACEPARENT)
