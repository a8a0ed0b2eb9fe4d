"""The one-hop SQLite adapter answers exactly as SQLAlchemy's own aiosqlite adapter does: rows, rowcounts, new keys,
executemany, RETURNING, savepoints, errors and rollbacks, on real SQLite files side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import ForeignKey, String, event, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from db.engine import _sqlite_pragmas, create_engine
from db.sqlite_driver import OneHopConnection, OneHopDBAPI


class Base(DeclarativeBase):
    pass


class Owner(Base):
    __tablename__ = "owners"
    id: Mapped[int] = mapped_column(primary_key=True)  # autoincrement: the ORM reads lastrowid or RETURNING
    name: Mapped[str] = mapped_column(String(20), unique=True)


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id"))
    n: Mapped[int] = mapped_column(default=0)


def engine_at(path: Path, one_hop: bool) -> AsyncEngine:
    extra: dict[str, Any] = {"module": OneHopDBAPI.load()} if one_hop else {}
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}", pool_size=1, max_overflow=0, **extra)
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


async def scenario(engine: AsyncEngine) -> list[Any]:
    """Everything the project asks of SQLite, each answer recorded."""
    seen: list[Any] = []
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions.begin() as session:
        ann, bob = Owner(name="ann"), Owner(name="bob")
        session.add_all([ann, bob])
        await session.flush()  # new keys come back
        seen.append((ann.id, bob.id))
        await session.execute(insert(Item), [{"owner_id": ann.id, "n": i} for i in range(5)])  # executemany
        result = await session.execute(
            update(Item).where(Item.n >= 3).values(n=Item.n + 10).execution_options(synchronize_session=False)
        )
        seen.append(result.rowcount)
        returned = await session.execute(
            update(Item).where(Item.n < 2).values(n=Item.n + 1).returning(Item.id, Item.n)
            .execution_options(synchronize_session=False)
        )  # fmt: skip
        seen.append(sorted(tuple(row) for row in returned))
        seen.append([tuple(row) for row in await session.execute(select(Item.id, Item.n).order_by(Item.id))])
        seen.append((await session.execute(text("SELECT count(*) FROM items WHERE n > :n"), {"n": 1})).scalar_one())
        nobody = await session.execute(update(Item).where(Item.id == 999).values(n=0))
        seen.append(nobody.rowcount)
        try:
            async with session.begin_nested():  # a savepoint that fails leaves the transaction usable
                session.add(Owner(name="ann"))
        except IntegrityError as exc:
            seen.append(type(exc.orig).__name__)
        seen.append((await session.execute(select(Owner.name).order_by(Owner.id))).scalars().all())
    with pytest.raises(IntegrityError):
        async with sessions.begin() as session:
            await session.execute(insert(Item), [{"owner_id": 12345, "n": 1}])  # foreign keys are on
    with pytest.raises(Exception) as error:  # a rolled-back transaction changes nothing
        async with sessions.begin() as session:
            await session.execute(update(Item).values(n=-1))
            raise RuntimeError("stop")
    seen.append(str(error.value))
    async with sessions() as session:
        seen.append((await session.execute(select(Item.n).order_by(Item.id))).scalars().all())
    return seen


async def test_the_one_hop_adapter_answers_as_the_stock_one(tmp_path: Path) -> None:
    answers = []
    for one_hop in (False, True):
        engine = engine_at(tmp_path / f"{one_hop}.db", one_hop)
        try:
            answers.append(await scenario(engine))
        finally:
            await engine.dispose()
    stock, one_hop_answers = answers
    assert one_hop_answers == stock
    assert stock[1] == 2 and stock[5] == 0 and stock[6] == "IntegrityError"  # the scenario saw what it tests


async def test_the_projects_sqlite_engines_use_the_one_hop_adapter(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            assert isinstance(raw.dbapi_connection, OneHopConnection)
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
    finally:
        await engine.dispose()
