"""SQLite statements through SQLAlchemy's aiosqlite adapter, as it comes and with one hop per statement.

    python -m benchmarks.bench_sqlite_driver [--transactions 1500] [--rounds 4]

Both engines are made as ``db.engine.create_engine`` makes one (WAL, synchronous=FULL, the same pragmas), one with
the stock adapter and one with ``db.sqlite_driver.OneHopDBAPI``, and run the same transactions in alternating
rounds: an ``UPDATE … RETURNING`` (a lease), a ``SELECT`` of a row by key, a plain ``UPDATE`` whose rowcount is
read, and an ``INSERT`` of two rows in one executemany, then the commit. Measured: this process's CPU (the event
loop, the greenlets and aiosqlite's thread together) per statement, commits included. Writes
benchmarks/results/sqlite_driver.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from benchmarks.support import machine, ratio, table, write_results
from db.engine import SQLITE_BUSY_TIMEOUT_MS, _sqlite_pragmas
from db.sqlite_driver import OneHopDBAPI

STATEMENTS_PER_TRANSACTION = 4


async def one_round(one_hop: bool, transactions: int, folder: Path) -> float:
    """CPU ms per statement over ``transactions`` transactions on a fresh database."""
    module: dict[str, Any] = {"module": OneHopDBAPI.load()} if one_hop else {}
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{folder / ('one.db' if one_hop else 'stock.db')}",
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        pool_size=1,
        max_overflow=0,
        **module,
    )
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE jobs (id INTEGER PRIMARY KEY, owner TEXT, leased REAL, n INT)"))
            await conn.execute(text("CREATE TABLE events (job INT, at REAL)"))
            await conn.execute(text("INSERT INTO jobs (owner, leased, n) VALUES ('a', 0, 0)"))
        sessions = async_sessionmaker(engine)
        started = time.process_time()
        for i in range(transactions):
            async with sessions.begin() as session:
                lease = text("UPDATE jobs SET leased = :at WHERE id = 1 RETURNING id, n")
                (await session.execute(lease, {"at": i})).all()
                (await session.execute(text("SELECT id, owner, leased, n FROM jobs WHERE id = :id"), {"id": 1})).all()
                done = await session.execute(text("UPDATE jobs SET n = n + 1 WHERE id = 1"))
                assert done.rowcount == 1
                add = text("INSERT INTO events (job, at) VALUES (:job, :at)")
                await session.execute(add, [{"job": 1, "at": i}] * 2)
        spent = time.process_time() - started
        async with sessions() as session:  # everything was written, both ways
            assert (await session.execute(text("SELECT n FROM jobs"))).scalar() == transactions
            assert (await session.execute(text("SELECT count(*) FROM events"))).scalar() == 2 * transactions
        return spent * 1000 / (transactions * STATEMENTS_PER_TRANSACTION)
    finally:
        await engine.dispose()


async def run(transactions: int, rounds: int) -> dict[str, Any]:
    stock: list[float] = []
    one_hop: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-sqlite-driver-") as tmp:
        for index in range(rounds):
            for hop, into in ((False, stock), (True, one_hop)):
                folder = Path(tmp) / f"{index}-{int(hop)}"
                folder.mkdir()
                into.append(round(await one_round(hop, transactions, folder), 4))
    return {
        "stock_ms_per_statement": stock,
        "one_hop_ms_per_statement": one_hop,
        "stock_median": round(statistics.median(stock), 4),
        "one_hop_median": round(statistics.median(one_hop), 4),
        "one_hop_over_stock": ratio(statistics.median(one_hop), statistics.median(stock)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transactions", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    info = machine()
    results = asyncio.run(run(args.transactions, args.rounds))
    print(table(["adapter", "CPU ms per statement (median)", "rounds"], [
        ["stock aiosqlite adapter", results["stock_median"], results["stock_ms_per_statement"]],
        ["one hop per statement", results["one_hop_median"], results["one_hop_ms_per_statement"]],
    ]))  # fmt: skip
    print(f"one hop / stock: {results['one_hop_over_stock']}")
    path = write_results(
        "sqlite_driver",
        {"machine": info, "transactions": args.transactions, "rounds": args.rounds, **results},
        args.out,
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
