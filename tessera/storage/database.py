"""Engine, connections and transactions.

``Database`` is created by the app factory (or a CLI command) from settings and handed to the stores; nothing
here is global. Writes that belong together run inside one ``async with db.transaction() as conn:`` block;
reads use ``async with db.read() as conn:``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from tessera.core.errors import TesseraError
from tessera.storage.hot import SQLiteHotReader


class DatabaseUnavailable(TesseraError):
    """The database cannot be opened or reached: a deployment problem, said in one line."""

    code = "database_unavailable"
    status_code = 503


def redacted_url(url: str) -> str:
    """The URL as it may be printed: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.partition("://")[0] + "://..."


def _prepare_sqlite_path(url: str) -> None:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        try:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseUnavailable(f"cannot create the folder of the database file {url}: {exc}") from exc


def _sqlite_engine(url: str, *, begin: str, echo: bool) -> AsyncEngine:
    engine = create_async_engine(url, echo=echo)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We emit BEGIN ourselves (below), so the driver must not.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL lets readers run beside the one writer; NORMAL sync stays durable across process crashes in WAL.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


class Database:
    """SQLite (embedded default) or PostgreSQL, chosen by the URL's scheme."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            _prepare_sqlite_path(url)
            # Writers take the write lock when they begin (BEGIN IMMEDIATE): a deferred transaction that reads
            # and then writes can fail with SQLITE_BUSY_SNAPSHOT instead of waiting for the lock.
            self.engine = _sqlite_engine(url, begin="BEGIN IMMEDIATE", echo=echo)
            self.read_engine = _sqlite_engine(url, begin="BEGIN", echo=echo)
        else:
            self.engine = create_async_engine(
                url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )
            self.read_engine = self.engine
        # One-statement reads on PostgreSQL skip BEGIN and ROLLBACK (two round trips of three): the same
        # pool, its connections in autocommit for the checkout (see ``single_read``).
        self._autocommit_engine = (
            None if self.is_sqlite else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._hot: SQLiteHotReader | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def sqlite_file(self) -> str | None:
        """The path of the SQLite database file, for code that opens it with ``sqlite3`` directly; None for
        PostgreSQL and for in-memory or URI-style SQLite."""
        if not self.is_sqlite:
            return None
        database = make_url(self.url).database
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        return database

    @property
    def hot_reader(self) -> SQLiteHotReader | None:
        """Point reads on the event loop (``hot.py``) for an SQLite file; None for PostgreSQL and for
        in-memory or URI-style SQLite, whose callers use :meth:`read`. Closed by :meth:`dispose`."""
        if self._hot is None:
            path = self.sqlite_file
            if path is None:
                return None
            self._hot = SQLiteHotReader(path)
        return self._hot

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One atomic unit of work: committed when the block ends, rolled back if it raises."""
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (a consistent snapshot for the block's duration)."""
        async with self.read_engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def single_read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one read statement. On PostgreSQL it runs outside a transaction (autocommit):
        the statement is its own snapshot of everything committed before it, as in :meth:`read`, without the
        BEGIN and ROLLBACK round trips. On SQLite it is :meth:`read`."""
        if self._autocommit_engine is None:
            async with self.read() as conn:
                yield conn
            return
        async with self._autocommit_engine.connect() as conn:
            yield conn

    async def probe(self) -> None:
        """Open one connection and run ``SELECT 1``, so that a wrong host, port, password, database name or
        file path surfaces as :class:`DatabaseUnavailable` naming the URL, not as a driver's traceback."""
        try:
            async with self.read() as conn:
                await conn.execute(text("SELECT 1"))
        except (OSError, DBAPIError) as exc:
            reason = getattr(exc, "orig", None) or exc
            said = str(reason).strip() or type(reason).__name__
            raise DatabaseUnavailable(f"cannot open the database {redacted_url(self.url)}: {said}") from exc

    async def dispose(self) -> None:
        if self._hot is not None:
            self._hot.close()
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
