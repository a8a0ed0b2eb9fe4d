"""What every service's ``main()`` shares: its settings, logging, one runner, and one sentence when it cannot run.

A newcomer's mistakes (a bad setting, an unknown log level, a database or broker that does not answer, a model
that is not there) end the process with one line on stderr that names what to fix, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from pydantic import ValidationError

from queue_gateway.runtime import logs
from queue_gateway.runtime.config import DetectbotSettings, secret_values, settings_problem
from queue_gateway.runtime.errors import CannotStart
from queue_gateway.runtime.runner import Service, run_until_signalled

S = TypeVar("S", bound=DetectbotSettings)
T = TypeVar("T")


def add_log_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        default=argparse.SUPPRESS,
        help="DEBUG, INFO, WARNING or ERROR (default INFO, DETECTBOT_LOG_LEVEL)",
    )


def load_settings(cls: type[S], args: argparse.Namespace | None = None, **overrides: object) -> S:
    """Build a service's settings from DETECTBOT_* (and .env) plus command-line overrides; one sentence if bad."""
    values: dict[str, Any] = {key: value for key, value in overrides.items() if value is not None}
    level = getattr(args, "log_level", None) if args is not None else None
    if level is not None:
        values["log_level"] = level
    try:
        return cls(**values)
    except ValidationError as exc:
        raise CannotStart(f"invalid settings: {settings_problem(exc)}") from None


def configure_logging(settings: DetectbotSettings, *, quiet: bool = False) -> None:
    """Logging for this process, at the settings' level (WARNING for a quiet command left at INFO)."""
    level = settings.log_level
    if quiet and level.upper() == "INFO" and "DETECTBOT_LOG_LEVEL" not in os.environ:
        level = "WARNING"
    try:
        logs.configure(level, secret_values(settings), fmt=settings.log_format)
    except logs.LogSetupError as exc:
        raise CannotStart(str(exc)) from None


def start_process(settings: DetectbotSettings, service: str) -> None:
    """What every service does first: logging, and tracing when it is on."""
    from queue_gateway.runtime import tracing

    configure_logging(settings)
    tracing.setup(service, settings.tracing)


def serve(service: Service, settings: DetectbotSettings) -> None:
    """Run a long-lived service in this process until SIGINT/SIGTERM."""
    run_loop(run_until_signalled(service), settings)


def run_loop(main: Coroutine[Any, Any, T], settings: DetectbotSettings) -> T:
    """Run a service's main coroutine to the end on the event loop its settings name (``DETECTBOT_EVENT_LOOP``).

    uvloop by default: the same asyncio API on libuv, whose callbacks, sockets and wake-ups from other threads
    (each SQLite statement's answer, each file hand-off) cost the gateway and the bots less of a CPU than the
    standard library's loop (``benchmarks/bench_e2e.py``, README Performance).
    """
    try:
        factory = _loop_factory(settings.event_loop)
    except CannotStart:
        main.close()  # it never runs
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def _loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise CannotStart(
                "DETECTBOT_EVENT_LOOP=uvloop, but uvloop is not installed: pip install uvloop, or set it to asyncio"
            ) from None
        return None
    return uvloop.new_event_loop


def run_main(name: str, body: Callable[[], int | None]) -> int:
    """Run a command's body; turn the errors a person can cause into one line and an exit code."""
    try:
        code = body()
    except CannotStart as exc:
        print(f"detectbot {name}: {exc}", file=sys.stderr)
        return exc.exit_code
    except logs.LogSetupError as exc:
        print(f"detectbot {name}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(code or 0)


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    return parser.parse_args(list(argv) if argv is not None else None)
