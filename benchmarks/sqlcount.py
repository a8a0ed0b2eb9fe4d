"""Run a detectbot service with every SQL statement counted and timed: where a process's database work goes.

    python -m benchmarks.sqlcount OUT.json gateway [--port …]

Installs SQLAlchemy ``before/after_cursor_execute`` listeners on every engine, then runs ``detectbot <args>``.
On SIGUSR1, and at exit, it writes OUT.json: per normalised statement, the executions, the rows of
``executemany`` calls, and the wall time from the cursor call to its result (for aiosqlite that includes the
hop to its thread and back). ``bench_e2e --sql`` and ``bench_drain --sql`` start the gateway this way and
read two snapshots around the measured phases. The listeners cost a few microseconds a statement.

With ``SQLCOUNT_CALLERS=1`` each statement is counted per caller too: the innermost function of the
gateway that issued it, found on the stack of the coroutine that SQLAlchemy's greenlet runs for.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

_PLACEHOLDER = r"(?:\?|\$\d+|%\(\w+\)s)"
_IN_LIST = re.compile(rf"\(\s*{_PLACEHOLDER}(?:\s*,\s*{_PLACEHOLDER})*\s*\)")  # (?), (?, ?, …), ($1, $2)
_SPACES = re.compile(r"\s+")


def normalise(statement: str) -> str:
    """One line, IN-lists of placeholders collapsed, at most 160 characters."""
    text = _SPACES.sub(" ", statement).strip()
    return _IN_LIST.sub("(…)", text)[:160]


def install(out: Path) -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    stats: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])  # executions, rows, seconds

    @event.listens_for(Engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    callers = os.environ.get("SQLCOUNT_CALLERS") == "1"

    @event.listens_for(Engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        started = conn.info["bench_started"].pop()
        key = normalise(statement)
        entry = stats[f"{_caller()} | {key[:100]}" if callers else key]
        entry[0] += 1
        entry[1] += len(parameters) if executemany and parameters is not None else 1
        entry[2] += time.perf_counter() - started

    def dump(*_: object) -> None:
        body = {key: {"executions": int(e), "rows": int(r), "seconds": s} for key, (e, r, s) in stats.items()}
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps({"at": time.time(), "statements": body}))
        tmp.replace(out)

    signal.signal(signal.SIGUSR1, dump)
    atexit.register(dump)


def _caller() -> str:
    """The innermost gateway function (outside db/) on the stack of the coroutine this statement runs for."""
    import greenlet

    current = greenlet.getcurrent()
    frame = current.parent.gr_frame if current.parent is not None else None
    while frame is not None:
        name = frame.f_code.co_filename
        if "/queue_gateway/" in name and "/queue_gateway/database.py" not in name:
            return f"{Path(name).stem}.{frame.f_code.co_name}"
        frame = frame.f_back
    return "?"


def diff(before: dict[str, Any], after: dict[str, Any], per: int, top: int = 20) -> dict[str, Any]:
    """The statements run between two snapshots, per unit of work (``per`` photos), most time first."""
    old = before.get("statements", {})
    rows = []
    for key, now in after.get("statements", {}).items():
        was = old.get(key, {"executions": 0, "rows": 0, "seconds": 0.0})
        executions = now["executions"] - was["executions"]
        if executions <= 0:
            continue
        seconds = now["seconds"] - was["seconds"]
        rows.append({
            "statement": key,
            "per_photo": round(executions / per, 2),
            "rows_per_photo": round((now["rows"] - was["rows"]) / per, 2),
            "ms_per_photo": round(seconds * 1000 / per, 3),
            "ms_each": round(seconds * 1000 / executions, 3),
        })  # fmt: skip
    rows.sort(key=lambda r: -r["ms_per_photo"])
    return {
        "statements_per_photo": round(sum(r["per_photo"] for r in rows), 1),
        "ms_per_photo": round(sum(r["ms_per_photo"] for r in rows), 2),
        "top": rows[:top],
    }


def main() -> int:
    out = Path(sys.argv[1])
    install(out)
    from detectbot.cli import main as detectbot

    return detectbot(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
