"""Administrative operations shared by the management API, the CLI and `tessera dev`.

Each is one transaction with its audit event, so every entry point behaves the same.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import OperationalError, ProgrammingError

from tessera.audit.log import AuditEvent, EventType
from tessera.core.errors import Conflict

if TYPE_CHECKING:
    from tessera.keys.keyring import SigningKey
    from tessera.oauth.clients import NewClient
    from tessera.oauth.resources import Api
    from tessera.services import Services

log = logging.getLogger("tessera.admin")

MANAGEMENT_SCOPES: dict[str, str] = {
    "users:read": "Read users",
    "users:write": "Create, change and disable users",
    "clients:read": "Read OAuth clients",
    "clients:write": "Register and delete OAuth clients",
    "sessions:read": "Read login sessions",
    "sessions:write": "End login sessions",
    "keys:read": "Read signing keys",
    "keys:write": "Rotate signing keys",
    "audit:read": "Read the audit log",
}


def management_api_identifier(issuer: str) -> str:
    return f"{issuer}/api/v1"


async def create_client(services: Services, *, source: str, **metadata: Any) -> NewClient:
    """Validate, store and audit a new client. ``metadata`` are ``clients.build_client`` arguments."""
    store = services.oauth.client_store
    made = services.oauth.build_client(source=source, **metadata)
    async with services.db.transaction() as conn:
        await store.insert(made.client, conn=conn)
        await services.audit.record(
            AuditEvent(EventType.CLIENT_CREATED, client_id=made.client.client_id, details={"source": source}),
            conn=conn,
        )
    return made


async def delete_client(services: Services, client_id: str) -> bool:
    async with services.db.transaction() as conn:
        deleted = await services.oauth.client_store.delete(client_id, conn=conn)
        if deleted:
            await services.audit.record(
                AuditEvent("client.deleted", client_id=client_id, details={"source": "api"}), conn=conn
            )
    services.oauth.clients.forget(client_id)
    return deleted


async def create_api(
    services: Services, identifier: str, *, scopes: dict[str, str] | list[str], name: str | None = None
) -> Api:
    store = services.oauth.api_store
    api = services.oauth.build_api(identifier, scopes=scopes, name=name)
    async with services.db.transaction() as conn:
        await store.insert(api, conn=conn)
    services.oauth.apis.forget()
    return api


async def ensure_api(
    services: Services, identifier: str, *, scopes: dict[str, str], name: str | None = None
) -> bool:
    """Register a built-in API (the management API, /fga) unless it exists; True when this call created it.

    Called at start-up, where several workers may race: the loser's insert is a Conflict, which is fine.
    When the database is not migrated yet (auto-migrate off), it logs and moves on: /readyz reports the
    pending migrations, and the next start registers the API.
    """
    try:
        if await services.oauth.api_store.get(identifier) is not None:
            return False
        await create_api(services, identifier, scopes=scopes, name=name)
    except Conflict:
        return False  # another process registered it first
    except (OperationalError, ProgrammingError) as exc:
        log.warning("could not register the %s API yet: %s", identifier, type(exc).__name__)
        return False
    return True


async def rotate_key(services: Services, *, alg: str | None = None, source: str = "cli") -> SigningKey:
    async with services.db.transaction() as conn:
        key = await services.keys.rotate(alg=alg, conn=conn)
        await services.audit.record(
            AuditEvent(EventType.KEY_ROTATED, details={"kid": key.kid, "alg": key.alg, "source": source}),
            conn=conn,
        )
    return key


async def end_user_sessions(services: Services, user_id: str, reason: str, *, source: str) -> int:
    """End every live session of a user and record it (``session.ended``, with how many), as sign-out does
    for one session: the audit log is what threat detection reads. Returns how many ended."""
    async with services.db.transaction() as conn:
        ended = await services.sessions.end_all_for_user(user_id, reason, conn=conn)
        if ended:
            await services.audit.record(
                AuditEvent(
                    EventType.LOGOUT,
                    user_id=user_id,
                    details={"reason": reason, "sessions": ended, "source": source},
                ),
                conn=conn,
            )
    return ended


async def end_session(services: Services, session_id: str, reason: str, *, source: str) -> bool:
    """End one live session and record it; False when there was no such live session."""
    session = await services.sessions.get(session_id)
    if session is None:
        return False
    async with services.db.transaction() as conn:
        if not await services.sessions.end(session_id, reason, conn=conn):
            return False  # ended meanwhile, by someone who recorded it
        await services.audit.record(
            AuditEvent(
                EventType.LOGOUT,
                user_id=session.user_id,
                session_id=session_id,
                details={"reason": reason, "source": source},
            ),
            conn=conn,
        )
    return True
