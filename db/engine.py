"""Engine and session factory: SQLite (WAL, synchronous=FULL, busy timeout) by default, Postgres via asyncpg.

synchronous=FULL: an accepted job survives a power cut, not only a process crash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from db.sqlite_driver import OneHopDBAPI

SQLITE_BUSY_TIMEOUT_MS = 10_000  # writers wait for each other instead of failing with "database is locked"


def sqlite_url(data_dir: Path) -> str:
    """The default database: one SQLite file under the data directory."""
    return f"sqlite+aiosqlite:///{(data_dir / 'detectbot.sqlite3').resolve()}"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """Create an engine; SQLite connections get WAL, a busy timeout and foreign keys, and run each statement in one
    hop to aiosqlite's thread."""
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url,
            echo=echo,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=1,
            max_overflow=0,
            module=OneHopDBAPI.load(),  # a statement is one hop to aiosqlite's thread (db/sqlite_driver.py)
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, echo=echo, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
