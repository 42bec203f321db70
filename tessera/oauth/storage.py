"""Tables and stores for what the authorization server remembers between requests.

- ``oauth_codes``: authorization codes (RFC 6749 4.1.2), by SHA-256 of the code; consumed once.
- ``oauth_refresh_tokens``: refresh tokens by SHA-256, grouped in families (one per grant, i.e. per
  authorization) for rotation and reuse detection (RFC 9700 4.14.2).
- ``oauth_revocations``: revoked grants and access-token jtis, kept until what they revoke has expired; JWT
  access tokens are checked against it on introspection and userinfo (RFC 7009, RFC 7662).
- ``oauth_used_jtis``: client-assertion jtis seen (RFC 7523 3, item 7), kept until the assertion expires.
- ``oauth_consents``: the scopes and APIs each user granted each client.

Everything shared lives in the database, so any process of one deployment can finish what another began.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Index,
    PrimaryKeyConstraint,
    String,
    Table,
    TextClause,
    delete,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from tessera.storage.database import Database
from tessera.storage.schema import UTCDateTime, metadata

oauth_codes = Table(
    "oauth_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("grant_id", String(26), nullable=False),
    Column("client_id", String(2048), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("session_id", String(64)),
    Column("redirect_uri", String(4096), nullable=False),
    Column("scope", String(4096), nullable=False),
    Column("resources", JSON, nullable=False),
    Column("nonce", String(512)),
    Column("code_challenge", String(128), nullable=False),
    Column("code_challenge_method", String(16), nullable=False),
    Column("auth_time", UTCDateTime, nullable=False),
    Column("amr", JSON),
    Column("acr", String(256)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("consumed_at", UTCDateTime),
)

oauth_refresh_tokens = Table(
    "oauth_refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("grant_id", String(26), nullable=False),  # the family
    Column("client_id", String(2048), nullable=False),
    Column("user_id", String(64)),
    Column("session_id", String(64)),
    Column("scope", String(4096), nullable=False),
    Column("resources", JSON, nullable=False),
    Column("auth_time", UTCDateTime),
    Column("amr", JSON),
    Column("acr", String(256)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("rotated_at", UTCDateTime),  # used once: a second use is reuse
    Column("revoked_at", UTCDateTime),
    Index("ix_oauth_refresh_tokens_grant_id", "grant_id"),
)

oauth_revocations = Table(
    "oauth_revocations",
    metadata,
    Column("key", String(128), primary_key=True),  # "grant:<id>" or "jti:<jti>"
    Column("reason", String(64), nullable=False),
    Column("revoked_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

oauth_used_jtis = Table(
    "oauth_used_jtis",
    metadata,
    Column("client_id", String(2048), nullable=False),
    Column("jti", String(256), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("client_id", "jti"),
)

oauth_consents = Table(
    "oauth_consents",
    metadata,
    Column("user_id", String(64), nullable=False),
    Column("client_id", String(2048), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("resources", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("user_id", "client_id"),
)


@dataclass(frozen=True)
class CodeRecord:
    code_hash: str
    grant_id: str
    client_id: str
    user_id: str
    session_id: str | None
    redirect_uri: str
    scope: str
    resources: list[str]
    nonce: str | None
    code_challenge: str
    code_challenge_method: str
    auth_time: datetime
    amr: list[str] | None
    acr: str | None
    created_at: datetime
    expires_at: datetime
    consumed_at: datetime | None = None


@dataclass(frozen=True)
class RefreshRecord:
    token_hash: str
    grant_id: str
    client_id: str
    user_id: str | None
    session_id: str | None
    scope: str
    resources: list[str]
    auth_time: datetime | None
    amr: list[str] | None
    acr: str | None
    created_at: datetime
    expires_at: datetime
    rotated_at: datetime | None = None
    revoked_at: datetime | None = None


def _values(record: Any) -> dict[str, Any]:
    return dict(record.__dict__)


class SqlCodeStore:
    async def insert(self, record: CodeRecord, *, conn: AsyncConnection) -> None:
        await conn.execute(insert(oauth_codes).values(**_values(record)))

    async def get(self, code_hash: str, *, conn: AsyncConnection) -> CodeRecord | None:
        row = (
            (await conn.execute(select(oauth_codes).where(oauth_codes.c.code_hash == code_hash)))
            .mappings()
            .first()
        )
        return CodeRecord(**dict(row)) if row is not None else None

    async def consume(self, code_hash: str, at: datetime, *, conn: AsyncConnection) -> bool:
        """Mark the code used; False when it already was (the conditional update makes this atomic)."""
        result = await conn.execute(
            update(oauth_codes)
            .where(oauth_codes.c.code_hash == code_hash, oauth_codes.c.consumed_at.is_(None))
            .values(consumed_at=at)
        )
        return bool(result.rowcount)

    async def purge(self, before: datetime, *, conn: AsyncConnection) -> None:
        await conn.execute(delete(oauth_codes).where(oauth_codes.c.expires_at < before))


class SqlRefreshTokenStore:
    async def insert(self, record: RefreshRecord, *, conn: AsyncConnection) -> None:
        await conn.execute(insert(oauth_refresh_tokens).values(**_values(record)))

    async def get(self, token_hash: str, *, conn: AsyncConnection) -> RefreshRecord | None:
        row = (
            (
                await conn.execute(
                    select(oauth_refresh_tokens).where(oauth_refresh_tokens.c.token_hash == token_hash)
                )
            )
            .mappings()
            .first()
        )
        return RefreshRecord(**dict(row)) if row is not None else None

    async def mark_rotated(self, token_hash: str, at: datetime, *, conn: AsyncConnection) -> bool:
        result = await conn.execute(
            update(oauth_refresh_tokens)
            .where(
                oauth_refresh_tokens.c.token_hash == token_hash,
                oauth_refresh_tokens.c.rotated_at.is_(None),
                oauth_refresh_tokens.c.revoked_at.is_(None),
            )
            .values(rotated_at=at)
        )
        return bool(result.rowcount)

    async def purge(self, before: datetime, *, conn: AsyncConnection) -> None:
        await conn.execute(delete(oauth_refresh_tokens).where(oauth_refresh_tokens.c.expires_at < before))

    async def revoke_family(self, grant_id: str, at: datetime, *, conn: AsyncConnection) -> int:
        result = await conn.execute(
            update(oauth_refresh_tokens)
            .where(oauth_refresh_tokens.c.grant_id == grant_id, oauth_refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return int(result.rowcount or 0)


class SqlRevocationStore:
    """Revoked grants and jtis. Reads go straight to the database: a revocation must be seen at once."""

    def __init__(self, db: Database):
        self._db = db

    async def add(
        self, key: str, reason: str, at: datetime, expires_at: datetime, *, conn: AsyncConnection
    ) -> None:
        found = await conn.execute(select(oauth_revocations.c.key).where(oauth_revocations.c.key == key))
        if found.first() is None:
            await conn.execute(
                insert(oauth_revocations).values(key=key, reason=reason, revoked_at=at, expires_at=expires_at)
            )

    async def any_revoked(self, keys: list[str], *, conn: AsyncConnection | None = None) -> bool:
        if not keys:
            return False
        if conn is None and (hot := self._db.hot_reader) is not None:
            # An SQLite file: the lookup on the event loop (storage/hot.py), as authoritative as the pool's.
            # Only placeholders are formatted in; the keys are parameters.
            marks = ", ".join("?" * len(keys))
            sql = f'SELECT 1 FROM oauth_revocations WHERE "key" IN ({marks}) LIMIT 1'  # noqa: S608
            return hot.one(sql, keys) is not None
        stmt = select(oauth_revocations.c.key).where(oauth_revocations.c.key.in_(keys)).limit(1)
        if conn is not None:
            return (await conn.execute(stmt)).first() is not None
        async with self._db.single_read() as own:
            return (await own.execute(stmt)).first() is not None

    async def purge(self, before: datetime, *, conn: AsyncConnection) -> None:
        await conn.execute(delete(oauth_revocations).where(oauth_revocations.c.expires_at < before))


@dataclass(frozen=True, slots=True)
class TokenState:
    """What the database says about an access token's revocation records, client and user."""

    revoked: bool  # a revocation record names its jti or its grant
    client_disabled: bool | None  # None: no such client (or it was not asked about)
    user_disabled: bool | None  # None: no such user (or it was not asked about)


class SqlTokenStates:
    """The authoritative reads an access token needs on every use, in one statement.

    Whether a revocation record names the token's jti or grant (``oauth_revocations``), whether its client
    exists and is enabled (``oauth_clients``) and whether its user does (``users``): three scalar subqueries
    of one ``SELECT``, so a token costs one read instead of three. On an SQLite file it runs on the event loop
    (``storage/hot.py``); elsewhere through :meth:`Database.single_read` (on PostgreSQL one round trip, no
    transaction around it). Nothing is cached: a revocation or a disabled client made in any process counts
    from the next request on. The ``users`` table is read directly: ``SqlUserStore`` is the only user store.
    """

    def __init__(self, db: Database):
        self._db = db
        # One statement per shape (how many revocation keys, whether the client and the user are asked):
        # built once each, so neither SQLAlchemy nor sqlite3 parses a new string per token.
        self._statements: dict[tuple[int, bool, bool], tuple[str, TextClause]] = {}

    def _statement(self, keys: int, client: bool, user: bool) -> tuple[str, TextClause]:
        shape = (keys, client, user)
        found = self._statements.get(shape)
        if found is None:
            # Named placeholders, which both sqlite3 and SQLAlchemy's text() take; only they are formatted in.
            names = ", ".join(f":k{i}" for i in range(keys))
            revoked = f'EXISTS (SELECT 1 FROM oauth_revocations WHERE "key" IN ({names}))'  # noqa: S608
            client_sql = "(SELECT disabled FROM oauth_clients WHERE client_id = :client)"
            user_sql = "(SELECT disabled FROM users WHERE id = :user)"
            sql = (
                f"SELECT {revoked if keys else 'NULL'}, {client_sql if client else 'NULL'}, "
                f"{user_sql if user else 'NULL'}"
            )
            found = self._statements[shape] = (sql, text(sql))
        return found

    async def read(
        self, revocation_keys: list[str], client_id: str | None, user_id: str | None
    ) -> TokenState:
        """The state of the records ``revocation_keys`` (``jti:<jti>``, ``grant:<id>``), of the client
        ``client_id`` and of the user ``user_id``; a client or user given as None is not looked up."""
        sql, stmt = self._statement(len(revocation_keys), client_id is not None, user_id is not None)
        params: dict[str, Any] = {f"k{i}": key for i, key in enumerate(revocation_keys)}
        if client_id is not None:
            params["client"] = client_id
        if user_id is not None:
            params["user"] = user_id
        hot = self._db.hot_reader
        if hot is not None:
            row = hot.one(sql, params)
        else:
            async with self._db.single_read() as conn:
                row = (await conn.execute(stmt, params)).first()
        assert row is not None  # a SELECT without FROM always yields its one row
        revoked, client_disabled, user_disabled = row
        return TokenState(
            bool(revoked),
            None if client_disabled is None else bool(client_disabled),
            None if user_disabled is None else bool(user_disabled),
        )


class SqlJtiStore:
    """Single-use jtis, shared by every process through a primary key (RFC 7523 3 item 7)."""

    def __init__(self, db: Database):
        self._db = db

    async def use(self, client_id: str, jti: str, expires_at: datetime, now: datetime) -> bool:
        """Record the jti; False when it was already used and has not expired."""
        try:
            async with self._db.transaction() as conn:
                await conn.execute(
                    delete(oauth_used_jtis).where(
                        oauth_used_jtis.c.client_id == client_id,
                        oauth_used_jtis.c.jti == jti,
                        oauth_used_jtis.c.expires_at < now,
                    )
                )
                await conn.execute(
                    insert(oauth_used_jtis).values(client_id=client_id, jti=jti, expires_at=expires_at)
                )
        except IntegrityError:
            return False
        return True

    async def purge(self, before: datetime) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(delete(oauth_used_jtis).where(oauth_used_jtis.c.expires_at < before))


@dataclass(frozen=True)
class Consent:
    user_id: str
    client_id: str
    scopes: frozenset[str]
    resources: frozenset[str]


class SqlConsentStore:
    async def get(self, user_id: str, client_id: str, *, conn: AsyncConnection) -> Consent | None:
        row = (
            (
                await conn.execute(
                    select(oauth_consents).where(
                        oauth_consents.c.user_id == user_id, oauth_consents.c.client_id == client_id
                    )
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        return Consent(user_id, client_id, frozenset(row["scopes"]), frozenset(row["resources"]))

    async def grant(
        self,
        user_id: str,
        client_id: str,
        scopes: set[str],
        resources: set[str],
        at: datetime,
        *,
        conn: AsyncConnection,
    ) -> Consent:
        """Add to what the user granted the client (grants accumulate; revoking is a separate act)."""
        current = await self.get(user_id, client_id, conn=conn)
        if current is None:
            await conn.execute(
                insert(oauth_consents).values(
                    user_id=user_id,
                    client_id=client_id,
                    scopes=sorted(scopes),
                    resources=sorted(resources),
                    created_at=at,
                    updated_at=at,
                )
            )
            return Consent(user_id, client_id, frozenset(scopes), frozenset(resources))
        merged_scopes = set(current.scopes) | scopes
        merged_resources = set(current.resources) | resources
        await conn.execute(
            update(oauth_consents)
            .where(oauth_consents.c.user_id == user_id, oauth_consents.c.client_id == client_id)
            .values(scopes=sorted(merged_scopes), resources=sorted(merged_resources), updated_at=at)
        )
        return Consent(user_id, client_id, frozenset(merged_scopes), frozenset(merged_resources))

    async def revoke(self, user_id: str, client_id: str, *, conn: AsyncConnection) -> bool:
        result = await conn.execute(
            delete(oauth_consents).where(
                oauth_consents.c.user_id == user_id, oauth_consents.c.client_id == client_id
            )
        )
        return bool(result.rowcount)


__all__ = [
    "CodeRecord",
    "Consent",
    "RefreshRecord",
    "SqlCodeStore",
    "SqlConsentStore",
    "SqlJtiStore",
    "SqlRefreshTokenStore",
    "SqlRevocationStore",
    "SqlTokenStates",
    "TokenState",
]
