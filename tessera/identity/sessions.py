"""Login sessions, kept server-side in the database so every process of a deployment sees the same ones.

The browser holds only a random cookie value (256 bits); the table stores its SHA-256, so a copy of the
database does not hand out live sessions (OWASP Session Management Cheat Sheet: session ids need at least
64 bits of entropy; we use far more, which is also why a fast hash is enough, see ``core.ids.sha256_hex``).
A session ends when it expires (``settings.session_ttl`` after sign-in), when the user signs out, when an
admin or the risk engine ends it, or when its user is disabled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import (
    JSON,
    Column,
    ForeignKeyConstraint,
    Index,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
)

from tessera.core.clock import Clock
from tessera.core.ids import new_id, new_secret, sha256_hex
from tessera.storage.database import Database
from tessera.storage.schema import UTCDateTime, metadata

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from tessera.identity.stores import SessionStore

COOKIE_BYTES = 32  # 256 bits of randomness in every cookie value
MAX_COOKIE_LENGTH = 128  # token_urlsafe(32) is 43 characters; anything much longer is not ours

login_sessions = Table(
    "login_sessions",
    metadata,
    Column("id", String(26), nullable=False),
    Column("user_id", String(26), nullable=False),
    Column("cookie_hash", String(64), nullable=False),
    Column("auth_time", UTCDateTime, nullable=False),
    Column("amr", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),
    Column("end_reason", String(64)),
    Column("ip", String(64)),
    Column("user_agent", String(1024)),
    PrimaryKeyConstraint("id", name="pk_login_sessions"),
    ForeignKeyConstraint(
        ["user_id"], ["users.id"], name="fk_login_sessions_user_id_users", ondelete="CASCADE"
    ),
    UniqueConstraint("cookie_hash", name="uq_login_sessions_cookie_hash"),
    Index("ix_login_sessions_user_id", "user_id"),
)


@dataclass(frozen=True)
class LoginSession:
    id: str
    user_id: str
    auth_time: datetime
    # RFC 8176 authentication method references: "pwd", "otp", "mfa", "hwk", ...
    amr: list[str]
    created_at: datetime
    expires_at: datetime
    ip: str | None
    user_agent: str | None


def _truncate(value: str | None, limit: int) -> str | None:
    return value if value is None or len(value) <= limit else value[:limit]


class SessionService:
    """``services.sessions``: cookies and lifetimes over a ``stores.SessionStore``."""

    def __init__(self, db: Database, clock: Clock, *, ttl_seconds: int, store: SessionStore | None = None):
        if store is None:
            from tessera.identity.sql import SqlSessionStore  # sql.py imports this module's table

            store = SqlSessionStore(db)
        self._store = store
        self._clock = clock
        self._ttl = timedelta(seconds=ttl_seconds)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.now(), UTC)

    async def create(
        self, user_id: str, amr: list[str], ip: str | None, user_agent: str | None
    ) -> tuple[LoginSession, str]:
        """A session that authenticated now, and its cookie value (returned once, never stored)."""
        cookie = new_secret(COOKIE_BYTES)
        now = self._now()
        session = LoginSession(
            id=new_id(),
            user_id=user_id,
            auth_time=now,
            amr=list(amr),
            created_at=now,
            expires_at=now + self._ttl,
            ip=_truncate(ip, 64),
            user_agent=_truncate(user_agent, 1024),
        )
        await self._store.insert(session, sha256_hex(cookie))
        return session, cookie

    async def get_by_cookie(self, value: str | None) -> LoginSession | None:
        if not value or len(value) > MAX_COOKIE_LENGTH:
            return None
        return await self._store.live_by_cookie_hash(sha256_hex(value), self._now())

    async def get(self, session_id: str) -> LoginSession | None:
        """A live session by id (expired or ended: None)."""
        return await self._store.live(session_id, self._now())

    async def end(self, session_id: str, reason: str, *, conn: AsyncConnection | None = None) -> bool:
        """End one session; True when it was live. Ending twice is harmless (the first reason stays). With
        ``conn``, in the caller's transaction, so that its audit event commits with it."""
        return await self._store.end(session_id, reason, self._now(), conn=conn)

    async def end_all_for_user(
        self, user_id: str, reason: str = "ended_by_admin", *, conn: AsyncConnection | None = None
    ) -> int:
        """End every session of a user (password change, account takeover); returns how many ended."""
        return await self._store.end_all_for_user(user_id, reason, self._now(), conn=conn)

    async def list_for_user(self, user_id: str) -> list[LoginSession]:
        """The user's live sessions, newest first."""
        return await self._store.live_for_user(user_id, self._now())

    async def prune(self, *, older_than_days: int = 30) -> int:
        """Delete sessions that ended or expired more than ``older_than_days`` ago; returns how many."""
        return await self._store.prune(self._now() - timedelta(days=older_than_days))
