"""What the authorization server needs from storage: one narrow protocol per kind of record.

The grants, client authentication, token issuing and the management operations depend on these protocols
only; ``oauth/storage.py``, ``clients.py`` and ``resources.py`` implement them over ``storage.Database``
(``Sql*`` classes), and ``tests/oauth/test_storage_conformance.py`` holds those implementations to them on
SQLite and PostgreSQL.

Methods that write take the caller's open transaction (``conn``, from ``Database.transaction()``) so that a
change and its audit event commit together; the core passes it through and never looks inside. Methods
without ``conn`` (or with ``conn=None``) read or write on their own.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from tessera.oauth.clients import Client
    from tessera.oauth.resources import Api
    from tessera.oauth.storage import CodeRecord, Consent, RefreshRecord


class CodeStore(Protocol):
    """Authorization codes by the SHA-256 of the code (RFC 6749 4.1.2: short-lived, used once)."""

    async def insert(self, record: CodeRecord, *, conn: AsyncConnection) -> None: ...

    async def get(self, code_hash: str, *, conn: AsyncConnection) -> CodeRecord | None: ...

    async def consume(self, code_hash: str, at: datetime, *, conn: AsyncConnection) -> bool:
        """Mark the code used; False when it already was. Atomic: of two concurrent redemptions one wins."""
        ...

    async def purge(self, before: datetime, *, conn: AsyncConnection) -> None: ...


class RefreshTokenStore(Protocol):
    """Refresh tokens by SHA-256, in families (one per grant) for rotation and reuse detection (RFC 9700
    4.14.2)."""

    async def insert(self, record: RefreshRecord, *, conn: AsyncConnection) -> None: ...

    async def get(self, token_hash: str, *, conn: AsyncConnection) -> RefreshRecord | None: ...

    async def mark_rotated(self, token_hash: str, at: datetime, *, conn: AsyncConnection) -> bool:
        """Mark the token replaced by its successor; False when it already was (a replay)."""
        ...

    async def revoke_family(self, grant_id: str, at: datetime, *, conn: AsyncConnection) -> int:
        """Revoke every live token of the grant; how many were live."""
        ...

    async def purge(self, before: datetime, *, conn: AsyncConnection) -> None: ...


class RevocationStore(Protocol):
    """Revoked grants and access-token jtis, kept until what they revoke has expired (RFC 7009). Reads must
    see every committed revocation at once: no caching behind this protocol."""

    async def add(
        self, key: str, reason: str, at: datetime, expires_at: datetime, *, conn: AsyncConnection
    ) -> None: ...

    async def any_revoked(self, keys: list[str], *, conn: AsyncConnection | None = None) -> bool: ...

    async def purge(self, before: datetime, *, conn: AsyncConnection) -> None: ...


class JtiStore(Protocol):
    """Client-assertion jtis seen, shared by every process (RFC 7523 3, item 7: each used once)."""

    async def use(self, client_id: str, jti: str, expires_at: datetime, now: datetime) -> bool:
        """Record the jti; False when it was already used and has not expired."""
        ...

    async def purge(self, before: datetime) -> None: ...


class ConsentStore(Protocol):
    """The scopes and APIs each user granted each client."""

    async def get(self, user_id: str, client_id: str, *, conn: AsyncConnection) -> Consent | None: ...

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
        """Add to what the user granted the client; grants accumulate."""
        ...

    async def revoke(self, user_id: str, client_id: str, *, conn: AsyncConnection) -> bool: ...


class ClientStore(Protocol):
    """Registered clients (``clients.build_client`` validates and makes them; this only keeps them)."""

    async def insert(self, client: Client, *, conn: AsyncConnection) -> None:
        """Store a new client; ``Conflict`` when the client id is taken."""
        ...

    async def update(self, client: Client, *, conn: AsyncConnection) -> Client:
        """Replace a client's metadata (``NotFound`` when it is gone); the stored version is returned."""
        ...

    async def delete(self, client_id: str, *, conn: AsyncConnection) -> bool: ...

    async def get(self, client_id: str, *, conn: AsyncConnection | None = None) -> Client | None: ...

    async def list(self, *, limit: int = 100, after: str | None = None) -> list[Client]:
        """Clients in client-id order; ``after`` is the last id of the previous page."""
        ...


class ApiStore(Protocol):
    """Registered APIs (resource servers) by identifier (``resources.build_api`` makes them)."""

    async def insert(self, api: Api, *, conn: AsyncConnection) -> None:
        """Store a new API; ``Conflict`` when the identifier is taken."""
        ...

    async def all(self) -> list[Api]: ...

    async def get(self, identifier: str) -> Api | None: ...
