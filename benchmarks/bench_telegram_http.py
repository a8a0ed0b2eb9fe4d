"""python-telegram-bot's Bot API calls over its default httpx request and over ``AiohttpRequest``, side by side,
and ``AiohttpRequest`` on uvloop (the services' default event loop) against the standard library's loop.

    python -m benchmarks.bench_telegram_http [--photos 300] [--rounds 3]

The Telegram wire fake (``tests/fakes/telegram_api.py``) runs in a child process; this process runs a PTB ``Bot``
and, per photo, what the product's processes ask of the Bot API: the bot's ``getFile``, the download of a 100 KB
photo and the "queued" ``sendMessage``; the gateway's ``editMessageText`` and ``sendPhoto`` of its result.
Measured: this process's CPU per photo (PTB, the HTTP client, the event loop), in alternating rounds, each on a
fresh event loop. Writes
benchmarks/results/telegram_http.json.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import uvloop
from telegram import Bot
from telegram.request import BaseRequest, HTTPXRequest

from benchmarks.photos import photo
from benchmarks.support import machine, ratio, table, write_results
from queue_gateway.runtime.telegram_http import AiohttpRequest

CHAT = 4242


def _serve(pipe: Connection, data: bytes) -> None:
    """The child: the fake Bot API with one stored photo, until the parent says stop."""
    from tests.fakes.telegram_api import FakeTelegram

    async def serve() -> None:
        async with FakeTelegram() as fake:
            file_id, _ = fake.add_file(data)
            fake.send_text_update(CHAT, "hello")  # the chat exists
            pipe.send((fake.token, fake.base_url, fake.base_file_url, file_id))
            await asyncio.get_running_loop().run_in_executor(None, pipe.recv)

    asyncio.run(serve())


async def one_round(kind: str, photos: int, server: tuple[str, str, str, str], result: bytes) -> float:
    token, base_url, file_url, file_id = server
    request: BaseRequest = (
        AiohttpRequest(connections=16) if kind == "aiohttp" else HTTPXRequest(connection_pool_size=16)
    )
    async with Bot(token, base_url=base_url, base_file_url=file_url, request=request) as bot:
        status = await bot.send_message(CHAT, "warm-up")
        started = time.process_time()
        for _ in range(photos):
            found = await bot.get_file(file_id)
            downloaded = await found.download_as_bytearray()
            status = await bot.send_message(CHAT, "In line: #1")
            await bot.edit_message_text("Done in 1.2 s", chat_id=CHAT, message_id=status.message_id)
            await bot.send_photo(CHAT, result, caption="2 persons")
        spent = time.process_time() - started
        assert len(downloaded) > 10_000
    return spent * 1000 / photos


# what is measured: the PTB request, on which event loop (None: asyncio's own)
SETUPS: dict[str, tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]] = {
    "httpx": ("httpx", None),
    "aiohttp": ("aiohttp", None),
    "aiohttp on uvloop": ("aiohttp", uvloop.new_event_loop),
}


def run(photos: int, rounds: int, server: tuple[str, str, str, str]) -> dict[str, Any]:
    result = photo("100k")  # an annotated result is a JPEG of about this size
    found: dict[str, list[float]] = {name: [] for name in SETUPS}
    for _ in range(rounds):
        for name, (kind, loop_factory) in SETUPS.items():
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                found[name].append(round(runner.run(one_round(kind, photos, server, result)), 3))
    medians = {name: statistics.median(values) for name, values in found.items()}
    return {
        "ms_per_photo": found,
        "median_ms_per_photo": medians,
        "aiohttp_over_httpx": ratio(medians["aiohttp"], medians["httpx"]),
        "uvloop_over_asyncio": ratio(medians["aiohttp on uvloop"], medians["aiohttp"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    info = machine()
    ours, theirs = multiprocessing.Pipe()
    child = multiprocessing.get_context("spawn").Process(target=_serve, args=(theirs, photo("100k")), daemon=True)
    child.start()
    try:
        server = ours.recv()
        results = run(args.photos, args.rounds, server)
    finally:
        ours.send("stop")
        child.join(10)
    print(table(["PTB request", "CPU ms per photo (median)", "rounds"], [
        [name, results["median_ms_per_photo"][name], results["ms_per_photo"][name]] for name in SETUPS
    ]))  # fmt: skip
    print(f"aiohttp / httpx: {results['aiohttp_over_httpx']}; on uvloop / on asyncio: {results['uvloop_over_asyncio']}")
    path = write_results("telegram_http", {"machine": info, "photos": args.photos, "rounds": args.rounds, **results},
                         args.out)  # fmt: skip
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
