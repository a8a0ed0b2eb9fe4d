"""SQLite through aiosqlite with one hop to its thread per statement, not three or four.

SQLAlchemy's aiosqlite adapter makes each statement a cursor (a hop to aiosqlite's thread and back), its execution
(another), its rows (another, for anything that returns rows) and the cursor's close (another). Each hop queues a
call, wakes the thread, wakes the event loop through its self-pipe and switches greenlets. Here a statement runs,
yields its rows and closes its cursor in one call on that thread; what SQLAlchemy then reads of the cursor
(``description``, ``rowcount``, ``lastrowid``) is kept from it. A rollback with no transaction open (the pool's
reset of every connection it gets back) is no hop at all. Everything else — the connection, transactions,
errors, server-side cursors — is SQLAlchemy's and aiosqlite's own. ``benchmarks/bench_sqlite_driver.py`` measures
the difference; the whole test suite runs on it.
"""

from __future__ import annotations

import collections
import sqlite3
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)


class _Spent:
    """What a statement's cursor left behind once it was read and closed."""

    __slots__ = ("arraysize", "description", "lastrowid", "rowcount")

    def __init__(self, cursor: sqlite3.Cursor | None = None) -> None:
        self.description = cursor.description if cursor is not None else None
        self.rowcount = cursor.rowcount if cursor is not None else -1
        self.lastrowid = cursor.lastrowid if cursor is not None else None
        self.arraysize = 1

    def close(self) -> None:
        pass


def _run(connection: aiosqlite.Connection, many: bool, operation: str, parameters: Any) -> tuple[Any, _Spent]:
    """On aiosqlite's thread: execute, fetch every row, close."""
    cursor = connection._conn.cursor()  # the sqlite3 connection that aiosqlite's thread owns
    try:
        if many:
            cursor.executemany(operation, parameters)
        else:
            cursor.execute(operation, () if parameters is None else parameters)
        rows = cursor.fetchall() if cursor.description is not None else None
        return rows, _Spent(cursor)
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ()
    _awaitable_cursor_close = False  # nothing is left open on the thread: closing is not a hop

    def _make_new_cursor(self, connection: Any) -> Any:
        return _Spent()

    def _aenter_cursor(self, cursor: Any) -> Any:
        return cursor

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        async with self._adapt_connection._execute_mutex:
            rows, self._cursor = await self._connection._execute(_run, self._connection, False, operation, parameters)
            if rows is not None:
                self._rows = collections.deque(rows)
            return None

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        async with self._adapt_connection._execute_mutex:
            rows, self._cursor = await self._connection._execute(
                _run, self._connection, True, operation, seq_of_parameters
            )
            if rows is not None:
                self._rows = collections.deque(rows)
            return None


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneHopCursor

    def rollback(self) -> None:
        """No hop when there is nothing to roll back: the pool resets every connection it gets back (after each
        commit, after each read-only session) with a rollback, and SQLite says whether a transaction is open."""
        raw = self._connection._connection  # the sqlite3 connection; only read here, between statements
        if raw is not None and not raw.in_transaction:
            return
        super().rollback()


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The aiosqlite DBAPI adapter whose connections run a statement in one hop; ``create_async_engine(url,
    module=OneHopDBAPI.load())``."""

    @classmethod
    def load(cls) -> OneHopDBAPI:
        return cls(aiosqlite, sqlite3)

    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        adapted = super().connect(*arg, **kw)
        return OneHopConnection(self, adapted._connection)
