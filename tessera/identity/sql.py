"""The identity stores (``identity/stores.py``) over ``storage.Database``: the ``users`` and
``login_sessions`` tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from tessera.core.errors import Conflict
from tessera.identity.sessions import LoginSession, login_sessions
from tessera.identity.users import User, users
from tessera.storage.database import Database


def _user(row: Any) -> User:
    return User(
        id=row.id,
        email=row.email,
        email_verified=bool(row.email_verified),
        name=row.name,
        created_at=row.created_at,
        disabled=bool(row.disabled),
    )


def _session(row: Any) -> LoginSession:
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


class SqlUserStore:
    def __init__(self, db: Database):
        self._db = db

    async def insert(self, user: User, password_hash: str | None, at: datetime) -> None:
        try:
            async with self._db.transaction() as conn:
                await conn.execute(
                    users.insert().values(
                        id=user.id,
                        email=user.email,
                        email_verified=user.email_verified,
                        name=user.name,
                        password_hash=password_hash,
                        created_at=at,
                        updated_at=at,
                        disabled=user.disabled,
                    )
                )
        except IntegrityError as exc:  # the unique email index; the id is a fresh ULID
            raise Conflict(f"a user with email {user.email} already exists") from exc

    async def _one(self, condition: Any) -> Any:
        async with self._db.read() as conn:
            return (await conn.execute(select(users).where(condition))).first()

    async def get(self, user_id: str) -> User | None:
        row = await self._one(users.c.id == user_id)
        return _user(row) if row is not None else None

    async def find_by_email(self, email: str) -> User | None:
        row = await self._one(users.c.email == email)
        return _user(row) if row is not None else None

    async def credentials(self, email: str) -> tuple[User, str | None] | None:
        row = await self._one(users.c.email == email)
        return (_user(row), row.password_hash) if row is not None else None

    async def page(self, *, limit: int, after: str | None) -> list[User]:
        stmt = select(users).order_by(users.c.id).limit(max(1, min(limit, 1000)))
        if after is not None:
            stmt = stmt.where(users.c.id > after)
        async with self._db.read() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_user(row) for row in rows]

    async def _update(self, condition: Any, **values: Any) -> bool:
        async with self._db.transaction() as conn:
            result = await conn.execute(update(users).where(condition).values(**values))
        return bool(result.rowcount)

    async def set_password_hash(
        self, user_id: str, password_hash: str | None, at: datetime, *, replacing: str | None = None
    ) -> bool:
        condition = users.c.id == user_id
        if replacing is not None:
            condition = condition & (users.c.password_hash == replacing)
        return await self._update(condition, password_hash=password_hash, updated_at=at)

    async def set_disabled(self, user_id: str, disabled: bool, at: datetime) -> bool:
        return await self._update(users.c.id == user_id, disabled=disabled, updated_at=at)

    async def set_email_verified(self, user_id: str, verified: bool, at: datetime) -> bool:
        return await self._update(users.c.id == user_id, email_verified=verified, updated_at=at)


class SqlSessionStore:
    def __init__(self, db: Database):
        self._db = db

    async def insert(self, session: LoginSession, cookie_hash: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                login_sessions.insert().values(
                    id=session.id,
                    user_id=session.user_id,
                    cookie_hash=cookie_hash,
                    auth_time=session.auth_time,
                    amr=session.amr,
                    created_at=session.created_at,
                    expires_at=session.expires_at,
                    ip=session.ip,
                    user_agent=session.user_agent,
                )
            )

    @staticmethod
    def _live(now: datetime) -> Any:
        return (
            select(login_sessions)
            .join(users, users.c.id == login_sessions.c.user_id)
            .where(
                login_sessions.c.ended_at.is_(None),
                login_sessions.c.expires_at > now,
                users.c.disabled.is_(False),
            )
        )

    async def _first(self, stmt: Any) -> LoginSession | None:
        async with self._db.read() as conn:
            row = (await conn.execute(stmt)).first()
        return _session(row) if row is not None else None

    async def live_by_cookie_hash(self, cookie_hash: str, now: datetime) -> LoginSession | None:
        return await self._first(self._live(now).where(login_sessions.c.cookie_hash == cookie_hash))

    async def live(self, session_id: str, now: datetime) -> LoginSession | None:
        return await self._first(self._live(now).where(login_sessions.c.id == session_id))

    async def live_for_user(self, user_id: str, now: datetime) -> list[LoginSession]:
        stmt = self._live(now).where(login_sessions.c.user_id == user_id).order_by(login_sessions.c.id.desc())
        async with self._db.read() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_session(row) for row in rows]

    async def _end(self, condition: Any, reason: str, at: datetime, conn: AsyncConnection | None) -> int:
        stmt = (
            update(login_sessions)
            .where(condition, login_sessions.c.ended_at.is_(None))
            .values(ended_at=at, end_reason=reason[:64])
        )
        if conn is not None:
            return int((await conn.execute(stmt)).rowcount or 0)
        async with self._db.transaction() as own:
            return int((await own.execute(stmt)).rowcount or 0)

    async def end(
        self, session_id: str, reason: str, at: datetime, *, conn: AsyncConnection | None = None
    ) -> bool:
        return bool(await self._end(login_sessions.c.id == session_id, reason, at, conn))

    async def end_all_for_user(
        self, user_id: str, reason: str, at: datetime, *, conn: AsyncConnection | None = None
    ) -> int:
        return await self._end(login_sessions.c.user_id == user_id, reason, at, conn)

    async def prune(self, before: datetime) -> int:
        async with self._db.transaction() as conn:
            result = await conn.execute(
                login_sessions.delete().where(
                    (login_sessions.c.expires_at < before) | (login_sessions.c.ended_at < before)
                )
            )
        return int(result.rowcount or 0)
