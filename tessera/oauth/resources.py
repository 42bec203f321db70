"""APIs (resource servers): registered by identifier, each with the scopes it defines.

Access tokens are JWTs (RFC 9068) issued only for registered APIs; the ``aud`` is the identifier, asked for
with RFC 8707 ``resource`` (or Auth0's ``audience``). An unknown one is ``invalid_target`` (RFC 8707 2).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import JSON, Column, String, Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from tessera.core.errors import Conflict, ValidationFailed
from tessera.core.ids import new_id
from tessera.oauth import stores
from tessera.storage.database import Database
from tessera.storage.schema import UTCDateTime, metadata

log = logging.getLogger("tessera.oauth")

oauth_apis = Table(
    "oauth_apis",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("identifier", String(2048), nullable=False, unique=True),
    Column("name", String(512), nullable=False),
    Column("scopes", JSON, nullable=False),  # {"scope": "description"}
    Column("access_token_ttl", JSON),  # seconds, or null for the server default
    Column("created_at", UTCDateTime, nullable=False),
)


@dataclass(frozen=True)
class Api:
    id: str
    identifier: str
    name: str
    scopes: dict[str, str] = field(default_factory=dict)
    access_token_ttl: int | None = None
    created_at: datetime | None = None

    def as_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "identifier": self.identifier,
            "name": self.name,
            "scopes": sorted(self.scopes),
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


def _validate_identifier(identifier: str) -> None:
    # RFC 8707 2: an absolute URI without a fragment. Auth0 identifiers are URIs in practice too.
    try:
        parts = urlsplit(identifier)
    except ValueError as exc:
        raise ValidationFailed("the API identifier must be an absolute URI") from exc
    if not parts.scheme or parts.fragment or len(identifier) > 2048:
        raise ValidationFailed("the API identifier must be an absolute URI without a fragment")


def _parse_scopes(scopes: list[str] | dict[str, str]) -> dict[str, str]:
    items = scopes.items() if isinstance(scopes, dict) else ((s, "") for s in scopes)
    parsed: dict[str, str] = {}
    for name, description in items:
        name = name.strip()
        # RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        if not name or any(c in name for c in ' "\\') or any(ord(c) < 0x21 or ord(c) > 0x7E for c in name):
            raise ValidationFailed(f"scope {name!r} is not a valid scope token")
        parsed[name] = description
    return parsed


def build_api(
    identifier: str,
    *,
    now: datetime,
    scopes: list[str] | dict[str, str] | None = None,
    name: str | None = None,
) -> Api:
    """Validate an API's identifier and scopes and make it; nothing is stored yet."""
    _validate_identifier(identifier)
    return Api(
        id=new_id(),
        identifier=identifier,
        name=(name or identifier)[:512],
        scopes=_parse_scopes(scopes or []),
        created_at=now,
    )


class SqlApiStore:
    """``stores.ApiStore`` over the database."""

    def __init__(self, db: Database):
        self._db = db

    async def insert(self, api: Api, *, conn: AsyncConnection) -> None:
        found = await conn.execute(select(oauth_apis.c.id).where(oauth_apis.c.identifier == api.identifier))
        if found.first() is not None:
            raise Conflict(f"an API with identifier {api.identifier} already exists")
        try:
            await conn.execute(
                insert(oauth_apis).values(
                    id=api.id,
                    identifier=api.identifier,
                    name=api.name,
                    scopes=api.scopes,
                    access_token_ttl=api.access_token_ttl,
                    created_at=api.created_at,
                )
            )
        except IntegrityError as exc:  # a concurrent insert won the race
            raise Conflict(f"an API with identifier {api.identifier} already exists") from exc

    async def all(self) -> list[Api]:
        async with self._db.read() as conn:
            rows = (await conn.execute(select(oauth_apis).order_by(oauth_apis.c.identifier))).mappings().all()
        return [Api(**dict(row)) for row in rows]

    async def get(self, identifier: str) -> Api | None:
        async with self._db.read() as conn:
            row = (
                (await conn.execute(select(oauth_apis).where(oauth_apis.c.identifier == identifier)))
                .mappings()
                .first()
            )
        return Api(**dict(row)) if row is not None else None


class ApiRegistry:
    """All APIs, cached in process for ``ttl`` seconds (there are few; one query loads them all)."""

    def __init__(self, store: stores.ApiStore, ttl: float, monotonic: Callable[[], float] = time.monotonic):
        self._store = store
        self._monotonic = monotonic
        self._ttl = ttl
        self._apis: dict[str, Api] = {}
        self._loaded_at = float("-inf")
        self._dirty = True
        self._refreshing: asyncio.Task[None] | None = None

    async def _load(self) -> None:
        started = self._monotonic()
        self._apis = {api.identifier: api for api in await self._store.all()}
        self._loaded_at = started
        self._dirty = False

    async def by_identifier(self) -> dict[str, Api]:
        if self._dirty:
            await self._load()
        elif self._monotonic() - self._loaded_at >= self._ttl and (
            self._refreshing is None or self._refreshing.done()
        ):
            # Stale: answer from memory, re-read once in the background (the bound becomes TTL + one read).
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh())
        return self._apis

    async def _refresh(self) -> None:
        try:
            await self._load()
        except Exception:  # keep what we have; the next use tries again
            log.warning("could not re-read the APIs", exc_info=True)

    async def settle(self) -> None:
        if self._refreshing is not None and not self._refreshing.done():
            await self._refreshing

    async def get(self, identifier: str) -> Api | None:
        return (await self.by_identifier()).get(identifier)

    def forget(self) -> None:
        """Changes made through this process are seen at once."""
        self._dirty = True
