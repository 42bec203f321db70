"""Migrations apply from an empty database on both backends, and twice is a no-op."""

from __future__ import annotations

from sqlalchemy import inspect

from tessera.storage.database import Database
from tessera.storage.migrate import is_up_to_date, upgrade


async def test_upgrade_from_empty_and_again(database_url: str) -> None:
    db = Database(database_url)
    try:
        await upgrade(db)
        assert await is_up_to_date(db)
        await upgrade(db)  # idempotent
        assert await is_up_to_date(db)
        async with db.read() as conn:
            tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        assert "alembic_version" in tables
    finally:
        await db.dispose()
