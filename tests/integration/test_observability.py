"""What an operator's Prometheus sees: every service's real /metrics, checked by promtool and against docs/metrics.md,
and the gateway's database and broker gauges through real outages of a private Postgres and RabbitMQ."""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import eventually
from tests.images import jpeg
from tests.metrics_catalogue import documented_labels, sample_names
from tests.nodes import PrivatePostgres, PrivateRabbitMQ
from tests.promtool import run
from tests.services import submit_photo, wait_finished

FIXED = "py:tests.detectors:fixed"


async def text_of(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as response:
        assert response.status == 200, url
        return await response.text()


def gauge(text: str, name: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"{name} is not in the scrape")


def check_scrape(service: str, text: str) -> set[str]:
    """promtool says nothing about the exposition, and every sample is a documented series with documented labels."""
    proc = run("check", "metrics", stdin=text)
    assert proc.returncode == 0 and not (proc.stdout + proc.stderr).strip(), f"{service}: {proc.stdout}{proc.stderr}"
    known, labels = sample_names(), documented_labels()
    seen = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert sample.name in known, f"{service} exposes {sample.name}, which docs/metrics.md does not list"
            documented = next(lab for name, lab in labels.items() if sample.name in _names(name))
            extra = set(sample.labels) - documented - {"le"}
            assert not extra, f"{service}: {sample.name} has labels {extra} that docs/metrics.md does not list"
            seen.add(sample.name)
    return seen


def _names(series: str) -> set[str]:
    base = series.removesuffix("_total").removesuffix("_info")
    return {series, base, f"{base}_total", f"{base}_created", f"{base}_bucket", f"{base}_sum", f"{base}_count",
            f"{base}_info"}  # fmt: skip


@pytest.mark.slow
async def test_every_service_metrics_pass_promtool_and_match_the_doc(
    start_telegram, start_worker, http: aiohttp.ClientSession
) -> None:
    """A real gateway, worker and Telegram bot after a photo went through all of them."""
    stack = await start_telegram(worker=False, http_port=0)
    worker = await start_worker(stack.gateway, model=FIXED, http_port=0)
    stack.fake.send_photo_update(chat_id=7, data=jpeg())
    await stack.delivered("sendPhoto")
    _, job = await submit_photo(http, stack.gateway, jpeg())
    await wait_finished(http, stack.gateway, job["job_id"])

    scrapes = {
        "gateway": await text_of(http, f"{stack.gateway.url}/metrics"),
        "worker": await text_of(http, f"http://127.0.0.1:{worker.worker.http_port}/metrics"),
        "telegram bot": await text_of(http, f"http://127.0.0.1:{stack.bot.health.port}/metrics"),
    }
    seen: set[str] = set()
    for service, text in scrapes.items():
        seen |= check_scrape(service, text)
    expected = {"detectbot_stage_seconds_bucket", "detectbot_deliveries_total", "detectbot_database_up",
                "detectbot_worker_jobs_total", "detectbot_worker_model_info", "detectbot_bot_photos_total"}  # fmt: skip
    assert expected <= seen, expected - seen
    assert gauge(scrapes["gateway"], "detectbot_database_up") == 1
    assert gauge(scrapes["gateway"], "detectbot_broker_up") == 1


async def test_promtool_check_metrics_does_complain_about_a_bad_exposition() -> None:
    proc = run("check", "metrics", stdin="# TYPE requests counter\nrequests 3\n")
    assert (proc.stdout + proc.stderr).strip(), "promtool found nothing wrong with a counter lacking _total"


@pytest.mark.slow
async def test_database_and_broker_gauges_follow_real_outages(
    private_postgres: PrivatePostgres, private_rabbitmq: PrivateRabbitMQ, start_gateway, http: aiohttp.ClientSession
) -> None:
    """The scrape answers while the database or the broker is away, and says which one it is."""
    gateway = await start_gateway(database_url=private_postgres.url, amqp_url=private_rabbitmq.url)
    url = f"{gateway.url}/metrics"

    async def reads(database: float, broker: float) -> bool:
        text = await text_of(http, url)
        return gauge(text, "detectbot_database_up") == database and gauge(text, "detectbot_broker_up") == broker

    await eventually(lambda: reads(1, 1), timeout=30, what="the gateway to reach both")
    private_postgres.kill()
    await eventually(lambda: reads(0, 1), timeout=30, what="detectbot_database_up 0 with the database killed")
    await private_postgres.start()
    await eventually(lambda: reads(1, 1), timeout=30, what="detectbot_database_up 1 again")
    private_rabbitmq.kill()
    await eventually(lambda: reads(1, 0), timeout=30, what="detectbot_broker_up 0 with the broker killed")
