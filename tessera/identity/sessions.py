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
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    ForeignKeyConstraint,
    Index,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
    select,
    update,
)

from tessera.core.clock import Clock
from tessera.core.ids import new_id, new_secret, sha256_hex
from tessera.identity.users import users
from tessera.storage.database import Database
from tessera.storage.schema import UTCDateTime, metadata

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


def _row_to_session(row: Any) -> LoginSession:
    return LoginSession(
        id=row.id,
        user_id=row.user_id,
        auth_time=row.auth_time,
        amr=list(row.amr or []),
        created_at=row.created_at,
        expires_at=row.expires_at,
        ip=row.ip,
        user_agent=row.user_agent,
    )


class SessionService:
    """``services.sessions``."""

    def __init__(self, db: Database, clock: Clock, *, ttl_seconds: int):
        self._db = db
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
        async with self._db.transaction() as conn:
            await conn.execute(
                login_sessions.insert().values(
                    id=session.id,
                    user_id=session.user_id,
                    cookie_hash=sha256_hex(cookie),
                    auth_time=session.auth_time,
                    amr=session.amr,
                    created_at=session.created_at,
                    expires_at=session.expires_at,
                    ip=session.ip,
                    user_agent=session.user_agent,
                )
            )
        return session, cookie

    def _live(self) -> Any:
        """Rows of sessions that are neither ended nor expired, whose user is enabled."""
        return (
            select(login_sessions)
            .join(users, users.c.id == login_sessions.c.user_id)
            .where(
                login_sessions.c.ended_at.is_(None),
                login_sessions.c.expires_at > self._now(),
                users.c.disabled.is_(False),
            )
        )

    async def get_by_cookie(self, value: str | None) -> LoginSession | None:
        if not value or len(value) > MAX_COOKIE_LENGTH:
            return None
        stmt = self._live().where(login_sessions.c.cookie_hash == sha256_hex(value))
        async with self._db.read() as conn:
            row = (await conn.execute(stmt)).first()
        return _row_to_session(row) if row is not None else None

    async def get(self, session_id: str) -> LoginSession | None:
        """A live session by id (expired or ended: None)."""
        stmt = self._live().where(login_sessions.c.id == session_id)
        async with self._db.read() as conn:
            row = (await conn.execute(stmt)).first()
        return _row_to_session(row) if row is not None else None

    async def end(self, session_id: str, reason: str) -> bool:
        """End one session; True when it was live. Ending twice is harmless (the first reason stays)."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(login_sessions)
                .where(login_sessions.c.id == session_id, login_sessions.c.ended_at.is_(None))
                .values(ended_at=self._now(), end_reason=reason[:64])
            )
        return bool(result.rowcount)

    async def end_all_for_user(self, user_id: str, reason: str = "ended_by_admin") -> int:
        """End every session of a user (password change, account takeover); returns how many ended."""
        async with self._db.transaction() as conn:
            result = await conn.execute(
                update(login_sessions)
                .where(login_sessions.c.user_id == user_id, login_sessions.c.ended_at.is_(None))
                .values(ended_at=self._now(), end_reason=reason[:64])
            )
        return int(result.rowcount or 0)

    async def list_for_user(self, user_id: str) -> list[LoginSession]:
        """The user's live sessions, newest first."""
        stmt = self._live().where(login_sessions.c.user_id == user_id).order_by(login_sessions.c.id.desc())
        async with self._db.read() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_row_to_session(row) for row in rows]

    async def prune(self, *, older_than_days: int = 30) -> int:
        """Delete sessions that ended or expired more than ``older_than_days`` ago; returns how many."""
        cutoff = self._now() - timedelta(days=older_than_days)
        async with self._db.transaction() as conn:
            result = await conn.execute(
                login_sessions.delete().where(
                    (login_sessions.c.expires_at < cutoff) | (login_sessions.c.ended_at < cutoff)
                )
            )
        return int(result.rowcount or 0)
