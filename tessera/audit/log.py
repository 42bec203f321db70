"""Audit events: the record, the store protocol's SQL implementation, and the event type names."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, String, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from tessera.core.clock import Clock
from tessera.core.ids import new_id
from tessera.storage.database import Database
from tessera.storage.schema import UTCDateTime, metadata


class EventType(StrEnum):
    LOGIN_SUCCEEDED = "login.succeeded"
    LOGIN_FAILED = "login.failed"
    LOGOUT = "session.ended"
    TOKEN_ISSUED = "token.issued"
    TOKEN_REVOKED = "token.revoked"
    REFRESH_TOKEN_REUSED = "refresh_token.reused"
    AUTHORIZATION_CODE_REUSED = "authorization_code.reused"
    CONSENT_GIVEN = "consent.given"
    CONSENT_REVOKED = "consent.revoked"
    CLIENT_CREATED = "client.created"
    CLIENT_AUTH_FAILED = "client.authentication_failed"
    USER_CREATED = "user.created"
    KEY_ROTATED = "key.rotated"
    RATE_LIMITED = "rate_limited"


audit_events = Table(
    "audit_events",
    metadata,
    Column("id", String(26), primary_key=True),  # ULID: sorts by time
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("type", String(64), nullable=False),
    Column("user_id", String(64)),
    Column("client_id", String(2048)),
    Column("session_id", String(64)),
    Column("ip", String(64)),
    Column("user_agent", String(1024)),
    Column("details", JSON, nullable=False),
    Index("ix_audit_events_user_time", "user_id", "occurred_at"),
    Index("ix_audit_events_type_time", "type", "occurred_at"),
    Index("ix_audit_events_ip_time", "ip", "occurred_at"),
)


@dataclass(frozen=True)
class AuditEvent:
    type: str
    user_id: str | None = None
    client_id: str | None = None
    session_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    occurred_at: datetime | None = None
    id: str | None = None


def _truncate(value: str | None, limit: int) -> str | None:
    return value if value is None or len(value) <= limit else value[:limit]


class AuditLog:
    def __init__(self, db: Database, clock: Clock):
        self._db = db
        self._clock = clock

    async def record(self, event: AuditEvent, *, conn: AsyncConnection | None = None) -> AuditEvent:
        """Append one event; pass ``conn`` to make it part of the caller's transaction."""
        stored = AuditEvent(
            id=new_id(),
            occurred_at=event.occurred_at or datetime.fromtimestamp(self._clock.now(), UTC),
            type=str(event.type),
            user_id=event.user_id,
            client_id=_truncate(event.client_id, 2048),
            session_id=event.session_id,
            ip=_truncate(event.ip, 64),
            user_agent=_truncate(event.user_agent, 1024),
            details=event.details,
        )
        row = {
            "id": stored.id,
            "occurred_at": stored.occurred_at,
            "type": stored.type,
            "user_id": stored.user_id,
            "client_id": stored.client_id,
            "session_id": stored.session_id,
            "ip": stored.ip,
            "user_agent": stored.user_agent,
            "details": stored.details,
        }
        if conn is not None:
            await conn.execute(insert(audit_events).values(**row))
        else:
            async with self._db.transaction() as own:
                await own.execute(insert(audit_events).values(**row))
        return stored

    async def query(
        self,
        *,
        user_id: str | None = None,
        type: str | None = None,
        ip: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        """Newest first."""
        stmt = select(audit_events).order_by(audit_events.c.id.desc()).limit(max(1, min(limit, 1000)))
        if user_id is not None:
            stmt = stmt.where(audit_events.c.user_id == user_id)
        if type is not None:
            stmt = stmt.where(audit_events.c.type == type)
        if ip is not None:
            stmt = stmt.where(audit_events.c.ip == ip)
        if since is not None:
            stmt = stmt.where(audit_events.c.occurred_at >= since)
        async with self._db.read() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [AuditEvent(**dict(row)) for row in rows]
