"""The ``signing_keys`` table and ``SqlKeyStore``, the ``keyring.KeyStore`` protocol over the database.

A row is one key pair: the public JWK in clear (it is published), the private key sealed under the master key
(bound to the row's kid, so a sealed key copied into another row does not open). A key is *active* while
``retired_at`` is null; among active keys the newest kid (a ULID) signs, so processes that raced to create the
first key still agree on which one signs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, LargeBinary, String, Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tessera.storage.database import Database
from tessera.storage.schema import UTCDateTime, metadata

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(16), nullable=False),
    Column("public_jwk", JSON, nullable=False),
    Column("private_key", LargeBinary, nullable=False),  # sealed PKCS#8 PEM
    Column("created_at", UTCDateTime, nullable=False),
    Column("retired_at", UTCDateTime),
)


@dataclass(frozen=True)
class KeyRecord:
    kid: str
    alg: str
    public_jwk: dict[str, Any]
    private_key: bytes
    created_at: datetime
    retired_at: datetime | None


class SqlKeyStore:
    def __init__(self, db: Database):
        self._db = db

    async def insert(self, record: KeyRecord, *, conn: AsyncConnection) -> None:
        await conn.execute(
            insert(signing_keys).values(
                kid=record.kid,
                alg=record.alg,
                public_jwk=record.public_jwk,
                private_key=record.private_key,
                created_at=record.created_at,
                retired_at=record.retired_at,
            )
        )

    async def retire_active(self, at: datetime, *, conn: AsyncConnection, except_kid: str) -> list[str]:
        active = (
            await conn.execute(
                select(signing_keys.c.kid).where(
                    signing_keys.c.retired_at.is_(None), signing_keys.c.kid != except_kid
                )
            )
        ).scalars()
        kids = list(active)
        if kids:
            await conn.execute(update(signing_keys).where(signing_keys.c.kid.in_(kids)).values(retired_at=at))
        return kids

    async def published(self, retired_after: datetime) -> list[KeyRecord]:
        """Active keys and keys retired after ``retired_after`` (their tokens may still be alive)."""
        stmt = (
            select(signing_keys)
            .where(signing_keys.c.retired_at.is_(None) | (signing_keys.c.retired_at > retired_after))
            .order_by(signing_keys.c.kid.desc())
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [KeyRecord(**dict(row)) for row in rows]

    async def active_kids(self, *, conn: AsyncConnection) -> list[str]:
        stmt = select(signing_keys.c.kid).where(signing_keys.c.retired_at.is_(None))
        return list((await conn.execute(stmt)).scalars())
