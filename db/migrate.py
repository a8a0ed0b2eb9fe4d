"""Apply the Alembic migrations to SQLite or Postgres: ``await upgrade(url, blobs=store)``.

A revision that moves images between the database and the blob store (0006) gets the store from here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.blobstore import BlobStore
from db.engine import create_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


async def upgrade(url: str, revision: str = "head", *, blobs: BlobStore | None = None) -> None:
    """Upgrade the database at ``url`` to ``revision`` (idempotent)."""
    engine = create_engine(url)
    try:
        await upgrade_engine(engine, revision, blobs=blobs)
    finally:
        await engine.dispose()


async def upgrade_engine(engine: AsyncEngine, revision: str = "head", *, blobs: BlobStore | None = None) -> None:
    """Upgrade in one transaction: stopped halfway, the database is as it was. A revision that moves images reads
    and writes the blob store from here, blocking: this runs before the gateway serves anything."""
    async with _transaction(engine) as connection:
        await connection.run_sync(_upgrade, revision, blobs)


async def downgrade(url: str, revision: str, *, blobs: BlobStore | None = None) -> None:
    """Take the database at ``url`` back to ``revision`` (the tests check that each revision undoes itself)."""
    engine = create_engine(url)
    try:
        async with _transaction(engine) as connection:
            await connection.run_sync(_downgrade, revision, blobs)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def _transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that holds the migration's DDL too. On SQLite the driver would run each DDL statement outside
    any transaction (it opens one only before INSERT, UPDATE and DELETE), so it is opened here, explicitly."""
    async with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            await connection.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            await connection.rollback()
            raise
        await connection.commit()


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as connection:
        return await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())


def head_revision() -> str:
    """The newest revision the migrations know."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    return str(head)


def _upgrade(connection: Connection, revision: str, blobs: BlobStore | None) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    config.attributes["blob_store"] = blobs
    command.upgrade(config, revision)


def _downgrade(connection: Connection, revision: str, blobs: BlobStore | None) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    config.attributes["blob_store"] = blobs
    command.downgrade(config, revision)


def _revision(connection: Connection, message: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.revision(config, message=message, autogenerate=True)


async def autogenerate(url: str, message: str) -> None:
    """Developer helper: write a new revision from the models' diff against ``url``."""
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_revision, message)
    finally:
        await engine.dispose()
