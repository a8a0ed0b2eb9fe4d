"""The worker's entry point: ``python -m worker`` and ``detectbot worker`` both run :func:`main`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from queue_gateway.runtime.entry import add_log_level, load_settings, parse, run_main, serve, start_process

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
    from worker.consumer import Worker
    from worker.model_loader import choose_model
    from worker.settings import WorkerSettings

    settings = load_settings(WorkerSettings, args, slots=args.slots, model=args.model)
    start_process(settings, "worker")
    serve(Worker(settings, model=choose_model(settings.model, settings.data_dir)))
