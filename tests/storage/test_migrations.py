"""Migrations apply from an empty database on both backends, twice is a no-op, and the schema they build is
the one the code declares."""

from __future__ import annotations

import importlib

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from tessera.storage.database import Database
from tessera.storage.migrate import is_up_to_date, upgrade
from tessera.storage.schema import metadata

# The modules that declare tables on the shared metadata. One left out here is not silently skipped: its
# tables exist in the migrated database but not in the metadata, which compare_metadata reports.
TABLE_MODULES = (
    "tessera.audit.log",
    "tessera.core.ratelimit",
    "tessera.fga.sql.schema",
    "tessera.identity.sessions",
    "tessera.identity.users",
    "tessera.keys.store",
    "tessera.oauth.clients",
    "tessera.oauth.logout",
    "tessera.oauth.registration",
    "tessera.oauth.resources",
    "tessera.oauth.storage",
    "tessera.risk.sql",
)


async def test_upgrade_from_empty_and_again(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with db.read() as conn:
            assert await conn.run_sync(lambda sync: inspect(sync).get_table_names()) == []
        await upgrade(db)
        assert await is_up_to_date(db)
        await upgrade(db)  # idempotent
        assert await is_up_to_date(db)
        async with db.read() as conn:
            tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        assert "alembic_version" in tables
    finally:
        await db.dispose()


async def test_migrations_build_the_declared_schema(database_url: str) -> None:
    for module in TABLE_MODULES:
        importlib.import_module(module)
    db = Database(database_url)
    try:
        await upgrade(db)
        async with db.read() as conn:
            tables = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
            differences = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
        # Every declared table exists, and no column, type, index or constraint differs from its declaration
        # (a model changed without its migration, or the reverse, shows up here).
        assert set(metadata.tables) <= tables
        assert differences == []
    finally:
        await db.dispose()
