"""The services' event loop: uvloop (the default where installed) against the standard library's, side by side.

    python -m benchmarks.bench_event_loop [--requests 2000] [--statements 1500] [--rounds 3]

Two pieces of what a photo costs the gateway and the bots, each on a fresh loop of either kind in alternating
rounds: an HTTP request with a 100 KB body and its JSON answer (an aiohttp server and client in this process, as
a bot's upload reaches the gateway and a worker's result comes back), and a SQLite transaction through the
gateway's engine (the one-hop driver: a statement's answer comes back from aiosqlite's thread with
``call_soon_threadsafe``). Measured: this process's CPU per request and per transaction. Writes
benchmarks/results/event_loop.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
from aiohttp import web

from benchmarks import bench_sqlite_driver
from benchmarks.support import machine, ratio, table, write_results

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop] | None] = {"asyncio": None, "uvloop": uvloop.new_event_loop}
BODY = b"\xff\xd8" + bytes(range(256)) * 390 + b"\xff\xd9"  # about a 100 KB photo


async def _answer(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({"id": "0" * 32, "status": "queued", "bytes": len(body)})


async def http_round(requests: int) -> float:
    """CPU ms per request and answer, server and client both in this process."""
    app = web.Application()
    app.router.add_post("/v1/jobs", _answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:

            async def post() -> None:
                async with session.post(f"http://127.0.0.1:{port}/v1/jobs", data=BODY) as response:
                    assert (await response.json())["bytes"] == len(BODY)

            for _ in range(50):  # warm-up
                await post()
            started = time.process_time()
            for _ in range(requests):
                await post()
            return (time.process_time() - started) * 1000 / requests
    finally:
        await runner.cleanup()


async def sqlite_round(transactions: int) -> float:
    """CPU ms per statement (commits included) through the one-hop driver."""
    with tempfile.TemporaryDirectory() as folder:
        return await bench_sqlite_driver.one_round(True, transactions, Path(folder))


def run(requests: int, statements: int, rounds: int) -> dict[str, Any]:
    found: dict[str, dict[str, list[float]]] = {"http_request": {}, "sqlite_statement": {}}
    for _ in range(rounds):
        for name, factory in LOOPS.items():
            with asyncio.Runner(loop_factory=factory) as runner:
                found["http_request"].setdefault(name, []).append(round(runner.run(http_round(requests)), 4))
                found["sqlite_statement"].setdefault(name, []).append(round(runner.run(sqlite_round(statements)), 4))
    medians = {piece: {name: statistics.median(v) for name, v in by_loop.items()} for piece, by_loop in found.items()}
    return {
        "cpu_ms": found,
        "median_cpu_ms": medians,
        "uvloop_over_asyncio": {piece: ratio(m["uvloop"], m["asyncio"]) for piece, m in medians.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--statements", type=int, default=1500, help="transactions of 4 statements each")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    info = machine()
    results = run(args.requests, args.statements, args.rounds)
    print(table(["CPU ms (median)", "asyncio", "uvloop", "uvloop / asyncio", "rounds (asyncio; uvloop)"], [
        [piece, m["asyncio"], m["uvloop"], results["uvloop_over_asyncio"][piece],
         f"{results['cpu_ms'][piece]['asyncio']}; {results['cpu_ms'][piece]['uvloop']}"]
        for piece, m in results["median_cpu_ms"].items()
    ]))  # fmt: skip
    path = write_results("event_loop", {"machine": info, "requests": args.requests, "statements": args.statements,
                                        "rounds": args.rounds, **results}, args.out)  # fmt: skip
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
