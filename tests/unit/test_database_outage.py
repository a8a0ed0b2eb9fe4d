"""Which database errors mean "away for now" (retried, then 503) and which mean "this work is wrong"."""

from __future__ import annotations

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi

from queue_gateway.database import is_outage


def wrapped(error: Exception) -> sa_exc.DBAPIError:
    """``error`` as SQLAlchemy hands it to the gateway: asyncpg's error, adapted, then wrapped."""
    adapted = AsyncAdapt_asyncpg_dbapi.Error(str(error), error)
    return sa_exc.DBAPIError.instance(None, None, adapted, AsyncAdapt_asyncpg_dbapi.Error)


def test_postgres_still_recovering_after_a_crash_is_an_outage() -> None:
    error = wrapped(asyncpg.exceptions.CannotConnectNowError("the database system is not yet accepting connections"))
    assert type(error) is sa_exc.DBAPIError and not error.connection_invalidated  # nothing else marks it
    assert is_outage(error)


def test_postgres_shutting_down_is_an_outage() -> None:
    assert is_outage(wrapped(asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator")))
    assert is_outage(wrapped(asyncpg.exceptions.CrashShutdownError("terminating connection due to a crash")))


def test_a_broken_statement_is_not_an_outage() -> None:
    assert not is_outage(wrapped(asyncpg.exceptions.UniqueViolationError("duplicate key value")))
    assert not is_outage(wrapped(asyncpg.exceptions.UndefinedColumnError("column does not exist")))
