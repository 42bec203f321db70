"""The Database: SQLite in WAL mode with foreign keys enforced, and transactions that commit whole or not at
all on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, text

from tessera.storage.database import Database

# A table of this test's own (not the shared metadata): the unit of work below writes two rows into it.
_scratch = MetaData()
pairs = Table("test_pairs", _scratch, Column("id", Integer, primary_key=True), Column("side", String(8)))


async def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'wal.db'}")
    try:
        for engine in (db.engine, db.read_engine):
            async with engine.connect() as conn:
                assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar_one() == "wal"
                assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one() == 1
        assert (tmp_path / "wal.db-wal").exists()
    finally:
        await db.dispose()


async def test_a_transaction_commits_whole_or_not_at_all(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with db.transaction() as conn:
            await conn.run_sync(lambda sync: _scratch.create_all(sync))
        with pytest.raises(RuntimeError):
            async with db.transaction() as conn:
                await conn.execute(insert(pairs).values(id=1, side="left"))
                await conn.execute(insert(pairs).values(id=2, side="right"))
                raise RuntimeError("the second half of the work failed")
        async with db.read() as conn:
            assert (await conn.execute(select(func.count()).select_from(pairs))).scalar_one() == 0
        async with db.transaction() as conn:
            await conn.execute(insert(pairs).values(id=1, side="left"))
            await conn.execute(insert(pairs).values(id=2, side="right"))
        async with db.read() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM test_pairs"))).scalar_one() == 2
    finally:
        await db.dispose()
