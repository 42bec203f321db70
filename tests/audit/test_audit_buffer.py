"""The token endpoint's batched audit writes: on SQLite appended from the event loop when the write lock is
free (tessera/audit/sqlite_appender.py), through the Database otherwise and on PostgreSQL. Either way the
rows read back exactly as AuditLog writes them."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime

from sqlalchemy.engine import make_url

from tessera.audit import AuditEvent, AuditLog, EventType
from tessera.audit.log import audit_events
from tessera.audit.sqlite_appender import SQLiteAppender
from tessera.core.clock import FrozenClock
from tessera.oauth.audit_buffer import AuditBuffer
from tessera.storage.database import Database


def token_event(n: int, clock: FrozenClock) -> AuditEvent:
    return AuditEvent(
        EventType.TOKEN_ISSUED,
        occurred_at=datetime.fromtimestamp(clock.now() + n, UTC),
        client_id="agent",
        ip="203.0.113.7",
        user_agent="agent/1.0 <b>",
        details={"grant_type": "client_credentials", "jti": f"j{n}", "aud": ["https://api.example", "ü"]},
    )


async def test_batched_events_read_back_as_the_audit_log_writes_them(
    database: Database, clock: FrozenClock
) -> None:
    buffer = AuditBuffer(database, clock, interval=60, batch=10_000)
    assert (buffer._appender is not None) == database.is_sqlite
    for n in range(25):
        buffer.add(token_event(n, clock))
    await buffer.flush()
    await AuditLog(database, clock).record(token_event(100, clock))  # the Database's own path, for comparison
    events = await AuditLog(database, clock).query(type="token.issued", limit=1000)
    assert len(events) == 26
    by_jti = {e.details["jti"]: e for e in events}
    for n in (*range(25), 100):
        event = by_jti[f"j{n}"]
        assert event.occurred_at == datetime.fromtimestamp(clock.now() + n, UTC)
        assert event.occurred_at is not None and event.occurred_at.tzinfo is not None
        assert (event.client_id, event.ip, event.user_agent) == ("agent", "203.0.113.7", "agent/1.0 <b>")
        assert event.details["aud"] == ["https://api.example", "ü"]
    assert len(await AuditLog(database, clock).query(ip="203.0.113.7", limit=1000)) == 26
    await buffer.aclose()


async def test_a_held_write_lock_sends_the_batch_the_usual_way(tmp_path: object, clock: FrozenClock) -> None:
    from pathlib import Path

    from tessera.storage.migrate import upgrade

    path = Path(str(tmp_path)) / "locked.db"
    database = Database(f"sqlite+aiosqlite:///{path}")
    await upgrade(database)
    appender = SQLiteAppender.for_database(database, audit_events)
    assert appender is not None
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer (another process) is in
    try:
        assert (
            appender.append([{"id": "x", "type": "t", "details": {}, "occurred_at": datetime.now(UTC)}])
            is False
        )
        buffer = AuditBuffer(database, clock, interval=60, batch=10_000)
        buffer.add(token_event(1, clock))
        flushing = asyncio.create_task(buffer.flush())
        await asyncio.sleep(0.2)
        assert not flushing.done()  # the fallback waits for the lock, off the loop
    finally:
        other.execute("ROLLBACK")
        other.close()
    await flushing
    events = await AuditLog(database, clock).query(type="token.issued")
    assert [e.details["jti"] for e in events] == ["j1"]
    assert await AuditLog(database, clock).query(type="t") == []  # the refused append wrote nothing
    await buffer.aclose()
    appender.close()
    await database.dispose()


async def test_the_write_ahead_log_is_checkpointed_off_the_loop(tmp_path: object, clock: FrozenClock) -> None:
    from pathlib import Path

    from tessera.storage.migrate import upgrade

    path = Path(str(tmp_path)) / "wal.db"
    database = Database(f"sqlite+aiosqlite:///{path}")
    await upgrade(database)
    buffer = AuditBuffer(database, clock, interval=60, batch=10_000)
    assert buffer._appender is not None
    buffer._appender.checkpoint_rows = 150  # due after the third 64-row chunk, the last
    for n in range(170):
        buffer.add(token_event(n, clock))
    await buffer.flush()
    assert buffer._checkpointing is not None
    await buffer._checkpointing
    assert buffer._appender.rows_since_checkpoint == 0
    probe = sqlite3.connect(make_url(database.url).database or "", isolation_level=None)
    busy, log_frames, checkpointed = probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    probe.close()
    assert busy == 0 and log_frames == checkpointed  # nothing was left in the log
    assert len(await AuditLog(database, clock).query(type="token.issued", limit=1000)) == 170
    await buffer.aclose()
    await database.dispose()
