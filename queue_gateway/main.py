"""The gateway's entry point: ``python -m queue_gateway`` and ``detectbot gateway`` both run :func:`main`;
``detectbot migrate`` runs :func:`migrate_main`."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence

from queue_gateway.runtime.entry import (
    add_log_level,
    configure_logging,
    load_settings,
    parse,
    run_main,
    serve,
    start_process,
)

log = logging.getLogger(__name__)

DESCRIPTION = "Run the HTTP gateway (jobs, results, delivery to chats)."
MIGRATE_DESCRIPTION = "Upgrade the database (SQLite or Postgres) to the current schema."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="bind address (default 127.0.0.1, or DETECTBOT_HOST)")
    parser.add_argument("--port", type=int, help="port (default 8080, or DETECTBOT_PORT)")
    add_log_level(parser)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="detectbot gateway", description=DESCRIPTION)
    add_arguments(parser)
    return run(parse(parser, argv))


def run(args: argparse.Namespace) -> int:
    return run_main("gateway", lambda: _serve(args))


def _serve(args: argparse.Namespace) -> None:
    from queue_gateway.service import GatewayService
    from queue_gateway.settings import GatewaySettings

    settings = load_settings(GatewaySettings, args, host=args.host, port=args.port)
    start_process(settings, "gateway")
    serve(GatewayService(settings), settings)


def add_migrate_arguments(parser: argparse.ArgumentParser) -> None:
    add_log_level(parser)


def migrate_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="detectbot migrate", description=MIGRATE_DESCRIPTION)
    add_migrate_arguments(parser)
    return migrate(parse(parser, argv))


def migrate(args: argparse.Namespace) -> int:
    return run_main("migrate", lambda: _migrate(args))


def _migrate(args: argparse.Namespace) -> None:
    from queue_gateway.app import database_name
    from queue_gateway.service import migrate_database
    from queue_gateway.settings import GatewaySettings

    settings = load_settings(GatewaySettings, args)
    configure_logging(settings)
    asyncio.run(migrate_database(settings))
    print(f"database {database_name(settings.database_url)} is at the current schema")
