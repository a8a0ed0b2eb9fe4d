"""Prometheus metrics of one gateway process, in its own registry (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs_received = Counter("detectbot_jobs_received", "Jobs accepted", ["platform"], registry=r)
        self.jobs_finished = Counter(
            "detectbot_jobs_finished", "Jobs that reached a final state", ["status"], registry=r
        )
        self.cache_hits = Counter("detectbot_cache_hits", "Jobs answered from an identical earlier one", registry=r)
        self.stage_seconds = Histogram(
            "detectbot_stage_seconds", "Time spent per stage", ["stage"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.inference_seconds = Histogram(
            "detectbot_inference_seconds",
            "Model time per image, as reported by workers",
            ["model"],
            buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
            registry=r,
        )
        self.deliveries = Counter(
            "detectbot_deliveries", "Delivery attempts to chats", ["platform", "outcome"], registry=r
        )
        self.rate_limited = Counter(
            "detectbot_delivery_rate_limited", "429 answers from chat platforms", ["platform"], registry=r
        )
        self.record_seconds = Histogram(
            "detectbot_delivery_record_seconds",
            "From a chat platform taking a result to its receipt being stored: the only window for a duplicate",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 20),
            registry=r,
        )
        self.task_restarts = Gauge(
            "detectbot_task_restarts", "Restarts of each background task since it last ran well", ["task"], registry=r
        )
        self.jobs = Gauge("detectbot_jobs", "Jobs in the database by status", ["status"], registry=r)
        self.queue_depth = Gauge("detectbot_queue_depth", "Messages waiting in the job queue", registry=r)
        self.queue_consumers = Gauge("detectbot_queue_consumers", "Workers consuming the job queue", registry=r)
        self.database_up = Gauge("detectbot_database_up", "1 if the database answered this scrape, else 0", registry=r)
        self.workers_online = Gauge(
            "detectbot_workers_online", "Workers consuming the job queue now (the broker's count)", registry=r
        )
        self.webhook_deliveries = Counter(
            "detectbot_webhook_deliveries", "Tries of completion webhooks, by outcome", ["outcome"], registry=r
        )
        self.webhooks_pending = Gauge(
            "detectbot_webhooks_pending",
            "Webhooks of finished jobs not delivered yet (due, or to be tried again)",
            registry=r,
        )
        self.broker_up = Gauge("detectbot_broker_up", "1 while the broker connection is ready, else 0", registry=r)
        # every known label value from the start, so that rate() and increase() see the first event too
        for status in ("done", "failed", "dead"):
            self.jobs_finished.labels(status=status)
        for outcome in ("delivered", "retry", "failed", "gone"):
            self.webhook_deliveries.labels(outcome=outcome)
        for platform in ("telegram", "discord"):
            for outcome in ("delivered", "retry", "abandoned"):
                self.deliveries.labels(platform=platform, outcome=outcome)

    def observe_finished(
        self, status: str, stages: dict[str, float | None], model: str | None, inference_ms: float | None
    ) -> None:
        self.jobs_finished.labels(status=status).inc()
        for stage, seconds in stages.items():
            if seconds is not None and seconds >= 0:
                self.stage_seconds.labels(stage=stage).observe(seconds)
        if model and inference_ms is not None:
            self.inference_seconds.labels(model=model).observe(inference_ms / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)
