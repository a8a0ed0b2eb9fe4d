"""The Discord bot's entry point: ``python -m bots.discord`` and ``detectbot discord`` both run :func:`main`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import aiohttp

from bots.discord.settings import DiscordSettings
from queue_gateway.runtime.entry import add_log_level, load_settings, parse, run_loop, run_main, start_process
from queue_gateway.runtime.runner import run_until_signalled

DESCRIPTION = "Run the Discord bot (/detect and the 'Detect objects' message menu)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_log_level(parser)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="detectbot discord", description=DESCRIPTION)
    add_arguments(parser)
    return run(parse(parser, argv))


def run(args: argparse.Namespace) -> int:
    return run_main("discord", lambda: _serve(args))


def _serve(args: argparse.Namespace) -> None:
    settings = load_settings(DiscordSettings, args)
    start_process(settings, "discord")
    run_loop(serve(settings), settings)


async def serve(settings: DiscordSettings) -> None:
    """Build the bot around one HTTP session (the gateway, attachments) and run it until SIGINT/SIGTERM."""
    from bots.discord.bot import DiscordBot
    from bots.shared.services import build_services

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        bot = DiscordBot(settings, build_services(http, settings, platform="discord"), http)
        await run_until_signalled(bot)
