"""The Telegram bot's entry point: ``python -m bots.telegram`` and ``detectbot telegram`` both run :func:`main`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import aiohttp

from bots.telegram.settings import TelegramSettings
from queue_gateway.runtime.entry import add_log_level, load_settings, parse, run_loop, run_main, start_process
from queue_gateway.runtime.runner import run_until_signalled

DESCRIPTION = "Run the Telegram bot (long polling, or a webhook when configured)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_log_level(parser)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="detectbot telegram", description=DESCRIPTION)
    add_arguments(parser)
    return run(parse(parser, argv))


def run(args: argparse.Namespace) -> int:
    return run_main("telegram", lambda: _serve(args))


def _serve(args: argparse.Namespace) -> None:
    settings = load_settings(TelegramSettings, args)
    start_process(settings, "telegram")
    run_loop(serve(settings), settings)


async def serve(settings: TelegramSettings) -> None:
    """Build the bot around one HTTP session for the gateway and run it until SIGINT/SIGTERM."""
    from bots.shared.services import build_services
    from bots.telegram.bot import TelegramBot

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        bot = TelegramBot(settings, build_services(http, settings, platform="telegram"))
        await run_until_signalled(bot)
