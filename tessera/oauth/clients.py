"""OAuth clients: the registered metadata (RFC 7591 section 2), the SQL store and an in-process cache.

The full RFC 7591 metadata document is kept in ``metadata`` (client_name, logo_uri, contacts,
backchannel_logout_uri, ...), and the fields the server decides on are also columns, so dynamic registration
(RFC 7591/7592) and Client ID Metadata Documents can be layered on this store. Client secrets are random
(256 bits) and stored only as SHA-256: a slow hash adds nothing for a secret with that much entropy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import JSON, Boolean, Column, String, Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from tessera.core.clock import Clock
from tessera.core.errors import Conflict, NotFound, ValidationFailed
from tessera.core.ids import constant_time_equal, new_id, new_secret, sha256_hex
from tessera.oauth import stores
from tessera.storage.database import Database
from tessera.storage.schema import UTCDateTime, metadata

log = logging.getLogger("tessera.oauth")

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
CONFIDENTIAL_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")

oauth_clients = Table(
    "oauth_clients",
    metadata,
    Column("client_id", String(2048), primary_key=True),
    Column("client_secret_hash", String(64)),
    Column("client_secret_expires_at", UTCDateTime),
    Column("client_name", String(512), nullable=False),
    Column("is_public", Boolean, nullable=False),
    Column("first_party", Boolean, nullable=False),
    Column("token_endpoint_auth_method", String(64), nullable=False),
    Column("redirect_uris", JSON, nullable=False),
    Column("grant_types", JSON, nullable=False),
    Column("response_types", JSON, nullable=False),
    Column("scope", String(4096)),
    Column("jwks", JSON),
    Column("jwks_uri", String(2048)),
    Column("metadata", JSON, nullable=False),  # the whole RFC 7591 document as registered
    Column("source", String(32), nullable=False),  # cli, api, dynamic, metadata_document
    Column("registration_access_token_hash", String(64)),  # RFC 7592, for the registration helper
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("disabled", Boolean, nullable=False),
)


@dataclass(frozen=True)
class Client:
    client_id: str
    client_name: str
    is_public: bool
    token_endpoint_auth_method: str
    redirect_uris: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = ("authorization_code",)
    response_types: tuple[str, ...] = ("code",)
    scope: str | None = None
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    first_party: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = "cli"
    client_secret_hash: str | None = None
    client_secret_expires_at: datetime | None = None
    registration_access_token_hash: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    disabled: bool = False

    @property
    def allowed_scopes(self) -> frozenset[str] | None:
        """The scopes this client may ask for, or None when it is not limited (RFC 7591 ``scope``)."""
        return frozenset(self.scope.split()) if self.scope else None

    @property
    def issues_refresh_without_offline_access(self) -> bool:
        """Client policy: refresh tokens even when ``offline_access`` was not asked for."""
        return bool(self.metadata.get("tessera_refresh_without_offline_access", False))

    def secret_matches(self, secret: str, now: datetime) -> bool:
        if self.client_secret_hash is None:
            return False
        if self.client_secret_expires_at is not None and self.client_secret_expires_at <= now:
            return False
        return constant_time_equal(sha256_hex(secret), self.client_secret_hash)

    def redirect_uri_allowed(self, uri: str) -> bool:
        """Exact match (RFC 9700 2.1), except the port of a loopback URI of a native client (RFC 8252 7.3)."""
        if uri in self.redirect_uris:
            return True
        if not self.is_public:
            return False
        given = _loopback_parts(uri)
        if given is None:
            return False
        return any(_loopback_parts(registered) == given for registered in self.redirect_uris)

    def public_metadata(self) -> dict[str, Any]:
        """RFC 7591 section 3.2.1 view (no secret hash)."""
        data = dict(self.metadata)
        data.update(
            client_id=self.client_id,
            client_name=self.client_name,
            redirect_uris=list(self.redirect_uris),
            grant_types=list(self.grant_types),
            response_types=list(self.response_types),
            token_endpoint_auth_method=self.token_endpoint_auth_method,
        )
        if self.scope:
            data["scope"] = self.scope
        if self.jwks is not None:
            data["jwks"] = self.jwks
        if self.jwks_uri:
            data["jwks_uri"] = self.jwks_uri
        if self.created_at is not None:
            data["client_id_issued_at"] = int(self.created_at.timestamp())
        return data


def _loopback_parts(uri: str) -> tuple[str, str, str, str] | None:
    """(scheme, host, path, query) of an http loopback URI, the port left out; None for any other URI."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if parts.scheme != "http" or host not in {"127.0.0.1", "::1", "localhost"} or parts.fragment:
        return None
    return (parts.scheme, host, parts.path or "/", parts.query)


def _validate_redirect_uri(uri: str, *, is_public: bool) -> None:
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise ValidationFailed(f"redirect URI {uri!r} is not a URL") from exc
    if not parts.scheme or parts.fragment:
        # RFC 6749 3.1.2: absolute, without a fragment.
        raise ValidationFailed(f"redirect URI {uri!r} must be absolute and have no fragment")
    if parts.scheme == "http" and _loopback_parts(uri) is None:
        raise ValidationFailed(f"redirect URI {uri!r}: plain http is only allowed on loopback (RFC 8252 8.3)")
    if parts.scheme in {"javascript", "data", "file", "vbscript"}:
        raise ValidationFailed(f"redirect URI scheme {parts.scheme!r} is not allowed")
    if parts.scheme not in {"http", "https"} and "." not in parts.scheme and not is_public:
        # RFC 8252 7.1: private-use schemes are for native (public) apps and use reverse domain names.
        raise ValidationFailed(f"redirect URI {uri!r}: private-use schemes are for native clients")


def _row_to_client(row: Any) -> Client:
    data = dict(row)
    for name in ("redirect_uris", "grant_types", "response_types"):
        data[name] = tuple(data[name] or ())
    return Client(**data)


@dataclass(frozen=True)
class NewClient:
    client: Client
    client_secret: str | None


def build_client(
    now: datetime,
    *,
    client_name: str,
    redirect_uris: list[str] | tuple[str, ...] = (),
    grant_types: list[str] | tuple[str, ...] | None = None,
    is_public: bool = False,
    scope: str | None = None,
    token_endpoint_auth_method: str | None = None,
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
    first_party: bool = False,
    metadata: dict[str, Any] | None = None,
    source: str = "cli",
    client_id: str | None = None,
) -> NewClient:
    """Validate metadata and make a client (and its secret); nothing is stored yet."""
    name = client_name.strip()
    if not name or len(name) > 512:
        raise ValidationFailed("client_name must be 1 to 512 characters")
    if grant_types is None:
        grant_types = (
            ["authorization_code", "refresh_token"]
            if (redirect_uris or is_public)
            else ["client_credentials"]
        )
    unknown = [g for g in grant_types if g not in GRANT_TYPES and ":" not in g]
    if unknown:
        raise ValidationFailed(f"unknown grant types: {', '.join(unknown)}")
    if is_public and "client_credentials" in grant_types:
        raise ValidationFailed("a public client cannot use client_credentials (RFC 6749 4.4)")
    if "authorization_code" in grant_types and not redirect_uris:
        raise ValidationFailed("authorization_code needs at least one redirect URI")
    for uri in redirect_uris:
        _validate_redirect_uri(uri, is_public=is_public)
    method = token_endpoint_auth_method or (
        "none" if is_public else ("private_key_jwt" if (jwks or jwks_uri) else "client_secret_basic")
    )
    if method not in AUTH_METHODS:
        raise ValidationFailed(f"unknown token_endpoint_auth_method {method!r}")
    if is_public != (method == "none"):
        raise ValidationFailed("public clients use 'none'; confidential clients must authenticate")
    if method == "private_key_jwt" and not (jwks or jwks_uri):
        raise ValidationFailed("private_key_jwt needs jwks or jwks_uri")
    if jwks is not None and not isinstance(jwks.get("keys"), list):
        raise ValidationFailed("jwks must be a JWK Set ({'keys': [...]})")
    if jwks_uri is not None and not jwks_uri.startswith("https://") and _loopback_parts(jwks_uri) is None:
        raise ValidationFailed("jwks_uri must be https")
    secret = new_secret(32) if method in ("client_secret_basic", "client_secret_post") else None
    client = Client(
        client_id=client_id or new_id().lower(),
        client_name=name,
        is_public=is_public,
        token_endpoint_auth_method=method,
        redirect_uris=tuple(redirect_uris),
        grant_types=tuple(grant_types),
        response_types=("code",) if "authorization_code" in grant_types else (),
        scope=" ".join(scope.split()) if scope else None,
        jwks=jwks,
        jwks_uri=jwks_uri,
        first_party=first_party,
        metadata=dict(metadata or {}),
        source=source,
        client_secret_hash=sha256_hex(secret) if secret else None,
        created_at=now,
        updated_at=now,
    )
    return NewClient(client, secret)


class SqlClientStore:
    """``stores.ClientStore`` over the database. Writes take a connection so callers can add audit events
    atomically."""

    def __init__(self, db: Database, clock: Clock):
        self._db = db
        self._clock = clock

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.now(), UTC)

    @staticmethod
    def _row(client: Client) -> dict[str, Any]:
        return {
            "client_id": client.client_id,
            "client_secret_hash": client.client_secret_hash,
            "client_secret_expires_at": client.client_secret_expires_at,
            "client_name": client.client_name,
            "is_public": client.is_public,
            "first_party": client.first_party,
            "token_endpoint_auth_method": client.token_endpoint_auth_method,
            "redirect_uris": list(client.redirect_uris),
            "grant_types": list(client.grant_types),
            "response_types": list(client.response_types),
            "scope": client.scope,
            "jwks": client.jwks,
            "jwks_uri": client.jwks_uri,
            "metadata": client.metadata,
            "source": client.source,
            "registration_access_token_hash": client.registration_access_token_hash,
            "created_at": client.created_at,
            "updated_at": client.updated_at,
            "disabled": client.disabled,
        }

    async def insert(self, client: Client, *, conn: AsyncConnection) -> None:
        existing = await conn.execute(
            select(oauth_clients.c.client_id).where(oauth_clients.c.client_id == client.client_id)
        )
        if existing.first() is not None:
            raise Conflict(f"client {client.client_id} already exists")
        try:
            await conn.execute(insert(oauth_clients).values(**self._row(client)))
        except IntegrityError as exc:  # a concurrent insert of the same id won the race
            raise Conflict(f"client {client.client_id} already exists") from exc

    async def update(self, client: Client, *, conn: AsyncConnection) -> Client:
        updated = replace(client, updated_at=self._now())
        row = self._row(updated)
        row.pop("client_id")
        row.pop("created_at")
        result = await conn.execute(
            update(oauth_clients).where(oauth_clients.c.client_id == client.client_id).values(**row)
        )
        if result.rowcount == 0:
            raise NotFound(f"no client {client.client_id}")
        return updated

    async def delete(self, client_id: str, *, conn: AsyncConnection) -> bool:
        result = await conn.execute(delete(oauth_clients).where(oauth_clients.c.client_id == client_id))
        return bool(result.rowcount)

    async def get(self, client_id: str, *, conn: AsyncConnection | None = None) -> Client | None:
        if len(client_id) > 2048:
            return None
        stmt = select(oauth_clients).where(oauth_clients.c.client_id == client_id)
        if conn is not None:
            row = (await conn.execute(stmt)).mappings().first()
        else:
            async with self._db.read() as own:
                row = (await own.execute(stmt)).mappings().first()
        return _row_to_client(row) if row is not None else None

    async def list(self, *, limit: int = 100, after: str | None = None) -> list[Client]:
        stmt = select(oauth_clients).order_by(oauth_clients.c.client_id).limit(max(1, min(limit, 1000)))
        if after:
            stmt = stmt.where(oauth_clients.c.client_id > after)
        async with self._db.read() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [_row_to_client(row) for row in rows]


class ClientCache:
    """Clients read through an in-process cache that forgets entries after ``ttl`` seconds.

    Every process has its own cache, so a change made elsewhere (a new secret, a disabled client) is seen
    within ``ttl`` seconds; changes made through this process are seen at once (``forget``). Bounded: when it
    is full it starts over, so random client ids cannot grow it without limit.
    """

    def __init__(
        self,
        store: stores.ClientStore,
        ttl: float,
        max_entries: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self._store = store
        self._monotonic = monotonic
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[str, tuple[float, Client | None]] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        # Client ID Metadata Documents (tessera/oauth/metadata_documents.py): https client_ids are resolved
        # by fetching the URL; that resolver keeps its own HTTP-driven cache.
        self.url_resolver: Callable[[str], Awaitable[Client | None]] | None = None

    async def get(self, client_id: str) -> Client | None:
        if self.url_resolver is not None and client_id.startswith("https://"):
            return await self.url_resolver(client_id)
        hit = self._entries.get(client_id)
        if hit is None:
            return await self._load(client_id)
        if self._monotonic() - hit[0] >= self._ttl and client_id not in self._refreshing:
            # Stale: answer from memory and re-read once in the background, so concurrent requests do not
            # all queue for the database when the TTL runs out (the bound becomes TTL + one read).
            self._refreshing[client_id] = asyncio.get_running_loop().create_task(self._refresh(client_id))
        return hit[1]

    async def _load(self, client_id: str) -> Client | None:
        now = self._monotonic()
        client = await self._store.get(client_id)
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[client_id] = (now, client)
        return client

    async def _refresh(self, client_id: str) -> None:
        try:
            await self._load(client_id)
        except Exception:  # keep the entry we have; the next use tries again
            log.warning("could not re-read client %s", client_id, exc_info=True)
        finally:
            self._refreshing.pop(client_id, None)

    async def settle(self) -> None:
        """Wait for background re-reads (shutdown, tests)."""
        while self._refreshing:
            await asyncio.gather(*self._refreshing.values(), return_exceptions=True)

    def forget(self, client_id: str) -> None:
        self._entries.pop(client_id, None)
