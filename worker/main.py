"""The worker's entry point: ``python -m worker`` and ``detectbot worker`` both run :func:`main`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

import aiohttp

from queue_gateway.runtime.entry import add_log_level, load_settings, parse, run_loop, run_main, start_process
from queue_gateway.runtime.runner import run_until_signalled

if TYPE_CHECKING:
    from worker.consumer import Worker
    from worker.settings import WorkerSettings

DESCRIPTION = "Run a detection worker (consumes the job queue)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--slots", type=int, help="inference processes (default: one per CPU, up to 4)")
    parser.add_argument("--model", help="model: offline-coco, yolo11n.pt, a .pt/.onnx path (or DETECTBOT_MODEL)")
    add_log_level(parser)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="detectbot worker", description=DESCRIPTION)
    add_arguments(parser)
    return run(parse(parser, argv))


def run(args: argparse.Namespace) -> int:
    return run_main("worker", lambda: _serve(args))


def _serve(args: argparse.Namespace) -> None:
    from worker.model_loader import choose_model
    from worker.settings import WorkerSettings

    settings = load_settings(WorkerSettings, args, slots=args.slots, model=args.model)
    start_process(settings, "worker")
    run_loop(serve(settings, model=choose_model(settings.model, settings.data_dir)), settings)


async def serve(settings: WorkerSettings, *, model: str) -> None:
    """Build the worker around one HTTP session for the gateway and run it until SIGINT/SIGTERM."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        await run_until_signalled(build_worker(settings, http, model=model))


def build_worker(settings: WorkerSettings, http: aiohttp.ClientSession, *, model: str) -> Worker:
    """The worker's composition root: its inference pool, its gateway link over ``http``, its metrics."""
    from worker.consumer import Worker, detector_spec
    from worker.gateway import GatewayLink
    from worker.inference import InferencePool
    from worker.metrics import WorkerMetrics

    pool = InferencePool(detector_spec(settings, model), settings.slots, timeout_s=settings.job_timeout_s)
    gateway = GatewayLink(http, settings.gateway_url, worker=settings.name, retry_window_s=settings.retry_window_s)
    return Worker(settings, pool=pool, gateway=gateway, metrics=WorkerMetrics())
