"""``detectbot demo``: the whole pipeline on one machine — gateway (SQLite) + worker + the real RabbitMQ —
with the sample photos pushed through it, detections printed and annotated files written."""

from __future__ import annotations

import asyncio
import importlib.util
import secrets
import sys
from pathlib import Path

import aio_pika
from aiohttp import web
from pydantic import SecretStr

from detectbot.runners import resolve_model
from detectbot.submit import Options, Reporter, submit
from queue_gateway.app import create_app
from queue_gateway.client_settings import GatewayClientSettings
from queue_gateway.publisher import safe_url
from queue_gateway.settings import GatewaySettings
from worker.consumer import Worker
from worker.inference import ModelUnavailable
from worker.settings import WorkerSettings

DEMO_QUEUE = "detectbot-demo.jobs"


def sample_photos() -> list[Path]:
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        return []
    assets = Path(next(iter(spec.submodule_search_locations))) / "assets"
    return [p for p in (assets / "bus.jpg", assets / "zidane.jpg") if p.is_file()]


def say(line: str) -> None:
    print(line, flush=True)


async def run_demo(photos: list[Path], output: Path) -> int:
    photos = photos or sample_photos()
    if not photos:
        say("No photos given and the sample photos were not found (pip install -e '.[worker]' brings them).")
        return 2
    worker_settings = WorkerSettings(queue=DEMO_QUEUE)
    gateway_settings = GatewaySettings(queue=DEMO_QUEUE, api_keys=[SecretStr(secrets.token_urlsafe(16))])
    if not await _broker_answers(gateway_settings.amqp_url):
        say(
            f"RabbitMQ does not answer at {safe_url(gateway_settings.amqp_url)}. Start it (rabbitmq-server -detached) "
            "or point DETECTBOT_AMQP_URL at one."
        )
        return 2
    say(f"database: {gateway_settings.database_url}")
    say(f"broker:   {safe_url(gateway_settings.amqp_url)} (queue {DEMO_QUEUE})")
    runner = web.AppRunner(create_app(gateway_settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    gateway_url = f"http://127.0.0.1:{port}"
    say(f"gateway:  {gateway_url}")
    try:
        return await _with_worker(worker_settings, gateway_url, gateway_settings, photos, output)
    finally:
        await runner.cleanup()


async def _with_worker(
    settings: WorkerSettings, gateway_url: str, gateway_settings: GatewaySettings, photos: list[Path], output: Path
) -> int:
    api_key = gateway_settings.api_keys[0]
    settings = settings.model_copy(update={"gateway_url": gateway_url, "api_key": api_key})
    model = await asyncio.to_thread(resolve_model, settings)
    chosen = not settings.model and model == "offline-coco"
    why = " — yolo11n.pt cannot be downloaded here, so the offline COCO model" if chosen else ""
    say(f"model:    {model}{why} (loading…)")
    worker = Worker(settings, model=model)
    task = asyncio.create_task(worker.run())
    consuming = asyncio.create_task(worker.consuming.wait())
    await asyncio.wait({task, consuming}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        consuming.cancel()
        try:
            task.result()
        except ModelUnavailable as exc:
            say(f"The model could not be loaded: {exc}")
            return 3
    say(f"worker:   ready ({worker.pool.model_name})\n")
    try:
        client = GatewayClientSettings(gateway_url=gateway_url, api_key=api_key)
        code = await submit(client, Options(photos=photos, output=output, details=True), Reporter(as_json=False))
    finally:
        worker.stop()
        await task
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


if __name__ == "__main__":
    sys.exit(asyncio.run(run_demo([], Path("detectbot-demo"))))
