"""Prometheus metrics and health endpoints of the gateway and the worker."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.images import jpeg
from tests.services import GatewayHandle, submit_photo, wait_finished


async def scrape(http: aiohttp.ClientSession, url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with http.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = await response.text()
    samples = {}
    for family in text_string_to_metric_families(text):  # raises on anything that is not valid exposition
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, metric: str, **labels: str) -> float:
    return samples.get((metric, tuple(sorted(labels.items()))), 0.0)


async def test_gateway_and_worker_metrics_move_when_jobs_run(
    gateway: GatewayHandle, start_worker, http: aiohttp.ClientSession
) -> None:
    handle = await start_worker(gateway, model="py:tests.detectors:fixed", http_port=0)
    worker_url = f"http://127.0.0.1:{handle.worker.http_port}"
    before = await scrape(http, f"{gateway.url}/metrics")
    worker_before = await scrape(http, f"{worker_url}/metrics")
    assert value(before, "detectbot_queue_consumers") == 1
    for _ in range(3):
        _, job = await submit_photo(http, gateway, jpeg())
        await wait_finished(http, gateway, job["job_id"])
    after = await scrape(http, f"{gateway.url}/metrics")
    assert value(after, "detectbot_jobs_received_total", platform="http") == 3
    assert value(after, "detectbot_jobs_finished_total", status="done") == 3
    assert value(after, "detectbot_jobs", status="done") == 3
    assert value(after, "detectbot_stage_seconds_count", stage="end_to_end") == 3
    assert value(after, "detectbot_inference_seconds_count", model="test-detector") == 3
    assert value(before, "detectbot_jobs_received_total", platform="http") == 0
    worker_after = await scrape(http, f"{worker_url}/metrics")
    assert value(worker_after, "detectbot_worker_jobs_total", outcome="done") == 3
    assert value(worker_before, "detectbot_worker_jobs_total", outcome="done") == 0
    assert value(worker_after, "detectbot_worker_inference_seconds_count") == 3
    assert value(worker_after, "detectbot_worker_model_info", name="test-detector", slots="1") == 1
    async with http.get(f"{worker_url}/readyz") as response:
        assert response.status == 200
    async with http.get(f"{worker_url}/healthz") as response:
        assert response.status == 200


async def test_worker_is_not_ready_while_stopping(gateway: GatewayHandle, start_worker, http) -> None:
    handle = await start_worker(gateway, model="py:tests.detectors:fixed", http_port=0)
    url = f"http://127.0.0.1:{handle.worker.http_port}/readyz"
    handle.worker.consuming.clear()  # what stop() does first
    async with http.get(url) as response:
        assert response.status == 503
        assert "not consuming" in (await response.json())["reason"]
