"""Point reads on an SQLite file, run with ``sqlite3`` straight from the event loop.

A read through :meth:`~tessera.storage.database.Database.read` goes through SQLAlchemy's pool and aiosqlite's
worker thread, one hand-off per step (BEGIN, cursor, execute, fetch, close, rollback): about 0.4 ms of the
event loop's CPU for a primary-key lookup that SQLite itself answers in microseconds. Reads on the hot path
of every request (is this access token revoked, is its client enabled) take this shortcut instead; the FGA
datastore's ``_SQLiteHotReads`` runs the reads of a Check on one of these.

The answers are as authoritative as the pool's: the connection is in autocommit mode, so every statement is
its own read transaction and sees everything committed before it began, in any process (WAL lets it read
beside the one writer, never waiting for it). It is read-only (``PRAGMA query_only``): writes still go
through :class:`~tessera.storage.database.Database`. Only for short indexed lookups: the event loop does
nothing else while a statement runs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any


class SQLiteHotReader:
    """One read-only autocommit ``sqlite3`` connection to a database file, opened on first use."""

    def __init__(self, path: str, *, mmap_size: int = 0):
        self._path = path
        self._mmap_size = mmap_size
        self._conn: sqlite3.Connection | None = None

    def connection(self) -> sqlite3.Connection:
        """The connection, opened on first use (for callers that run their own statements)."""
        if self._conn is None:
            # check_same_thread=False: opened lazily from whichever thread first reads (the event loop's in
            # the server); every later statement runs there too.
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA query_only = ON")
            # As the pool's connections: wait for a checkpoint's brief lock rather than fail.
            conn.execute("PRAGMA busy_timeout = 15000")
            if self._mmap_size:
                # Pages come from the OS page cache through a memory map instead of one read() call each
                # (address space only; WAL and writers are unaffected).
                conn.execute(f"PRAGMA mmap_size = {int(self._mmap_size)}")
            self._conn = conn
        return self._conn

    def one(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> tuple[Any, ...] | None:
        """The first row of a query (``?`` placeholders and a sequence, or ``:name`` and a mapping), or
        None."""
        row: tuple[Any, ...] | None = self.connection().execute(sql, params).fetchone()
        return row

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
