"""Batches of audit rows appended to an SQLite file straight from the event loop.

The token endpoint's audit events are written in batches (tessera/oauth/audit_buffer.py). Through
SQLAlchemy and aiosqlite each batch is a transaction whose every step hops to aiosqlite's thread and back,
and that thread then competes with the event loop for the GIL row by row; appending the same rows with the
``sqlite3`` module on the loop costs the process about a tenth less CPU per token (bench/README.md). A batch
of a few hundred rows is one B-tree append each, so the loop is held for about a millisecond.

Values go through the columns' own SQLAlchemy bind processors and the statement is SQLAlchemy's own
compilation, so the rows are exactly what ``Database`` would have written. The connection never waits for
the write lock (``busy_timeout = 0``): when another writer holds it (a grant's transaction in this process,
another process), ``append`` answers False at once and the caller writes the batch the usual way. It never
checkpoints on the loop either (``wal_autocheckpoint = 0``): after every ``checkpoint_rows`` rows the caller
runs ``checkpoint`` in a worker thread, where the copy into the database file does not hold up requests.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.engine import Dialect

from tessera.storage.database import Database


class SQLiteAppender:
    def __init__(self, path: str, table: Table, dialect: Dialect, *, checkpoint_rows: int = 5000):
        self._path = path
        compiled = insert(table).compile(dialect=dialect)
        self._sql = str(compiled)
        # The order of the statement's positional parameters, and each column's processor (None: as is).
        self._columns = list(compiled.positiontup or ())
        self._processors: list[Callable[[Any], Any] | None] = [
            table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in self._columns
        ]
        self._conn: sqlite3.Connection | None = None
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._checkpoint_lock = threading.Lock()
        self.checkpoint_rows = checkpoint_rows
        self.rows_since_checkpoint = 0

    @classmethod
    def for_database(cls, db: Database, table: Table) -> SQLiteAppender | None:
        """An appender for a SQLite file database; None for PostgreSQL and in-memory SQLite."""
        path = db.sqlite_file
        return cls(path, table, db.engine.dialect) if path is not None else None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 0")
            # As Database's connections: in WAL mode a commit appends to the log, with no fsync.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            self._conn = conn
        return self._conn

    def append(self, rows: Sequence[Mapping[str, Any]]) -> bool:
        """Insert ``rows`` (column name -> value, as for SQLAlchemy) in one transaction; False, with nothing
        written, when the write lock is taken."""
        if not rows:
            return True
        conn = self._db()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # SQLITE_BUSY: another writer is in; never wait on the loop
            return False
        try:
            conn.executemany(self._sql, [self._values(row) for row in rows])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.rows_since_checkpoint += len(rows)
        return True

    def _values(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        values = (row.get(name) for name in self._columns)
        return tuple(
            value if process is None or value is None else process(value)
            for value, process in zip(values, self._processors, strict=True)
        )

    @property
    def checkpoint_due(self) -> bool:
        return self.rows_since_checkpoint >= self.checkpoint_rows

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file (PASSIVE: never waits for readers or writers).
        Blocking: run it in a worker thread."""
        self.rows_since_checkpoint = 0
        with self._checkpoint_lock:
            if self._checkpoint_conn is None:
                self._checkpoint_conn = sqlite3.connect(
                    self._path, isolation_level=None, check_same_thread=False
                )
            self._checkpoint_conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def close(self) -> None:
        for conn in (self._conn, self._checkpoint_conn):
            if conn is not None:
                conn.close()
        self._conn = self._checkpoint_conn = None
