"""Audit log conformance on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from tessera.audit import AuditEvent, AuditLog, EventType
from tessera.core.clock import FrozenClock
from tessera.storage.database import Database


async def test_record_and_query_newest_first(database: Database, clock: FrozenClock) -> None:
    log = AuditLog(database, clock)
    await log.record(
        AuditEvent(EventType.LOGIN_FAILED, user_id="u1", ip="203.0.113.9", details={"reason": "password"})
    )
    clock.advance(5)
    await log.record(
        AuditEvent(EventType.LOGIN_SUCCEEDED, user_id="u1", ip="203.0.113.9", user_agent="x" * 5000)
    )
    await log.record(AuditEvent(EventType.LOGIN_SUCCEEDED, user_id="u2"))

    events = await log.query(user_id="u1")
    assert [e.type for e in events] == ["login.succeeded", "login.failed"]
    assert events[1].details == {"reason": "password"}
    assert events[0].user_agent is not None and len(events[0].user_agent) == 1024
    assert events[0].occurred_at == datetime.fromtimestamp(clock.now(), UTC)

    assert len(await log.query(type="login.succeeded")) == 2
    assert len(await log.query(ip="203.0.113.9")) == 2
    assert await log.query(since=datetime.fromtimestamp(clock.now() + 1, UTC)) == []


async def test_record_joins_the_callers_transaction(database: Database, clock: FrozenClock) -> None:
    log = AuditLog(database, clock)
    try:
        async with database.transaction() as conn:
            await log.record(AuditEvent(EventType.TOKEN_ISSUED, user_id="u3"), conn=conn)
            raise RuntimeError("the rest of the unit of work failed")
    except RuntimeError:
        pass
    assert await log.query(user_id="u3") == []  # rolled back with the caller's work
