"""Alembic, driven from code.

Each capability owns a migration branch (``branch_labels = ("oauth",)`` and so on) in
``tessera/storage/migrations/versions/``, named ``<capability>_<NNNN>_<what>.py``; ``upgrade heads`` applies
them all. Branches let capabilities evolve their tables independently; a branch that needs another's tables
says so with ``depends_on``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from tessera.storage.database import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def _upgrade(connection: Connection, config: Config, target: str) -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, target)


async def upgrade(db: Database, target: str = "heads") -> None:
    config = alembic_config(db.url)
    async with db.engine.begin() as conn:
        await conn.run_sync(_upgrade, config, target)


def _current_heads(connection: Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


async def is_up_to_date(db: Database) -> bool:
    script = ScriptDirectory.from_config(alembic_config(db.url))
    async with db.read() as conn:
        current = await conn.run_sync(_current_heads)
    return current == set(script.get_heads())


def upgrade_sync(database_url: str, target: str = "heads") -> None:
    async def run() -> None:
        db = Database(database_url)
        try:
            await upgrade(db, target)
        finally:
            await db.dispose()

    asyncio.run(run())
