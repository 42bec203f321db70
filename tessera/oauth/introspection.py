"""Token introspection (RFC 7662).

The caller is an authenticated confidential client (RFC 7662 2.1). Access tokens are active when they are
Tessera's, well signed, unexpired, not revoked, and their client and user still exist and are enabled;
refresh tokens only when asked by the client they were issued to.
Anything else is ``{"active": false}``, with nothing said about why (RFC 7662 2.2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tessera.core.errors import InvalidToken
from tessera.core.ids import sha256_hex
from tessera.oauth.clients import Client

if TYPE_CHECKING:
    from tessera.oauth.server import OAuthServer

INACTIVE: dict[str, Any] = {"active": False}


async def introspect(server: OAuthServer, caller: Client, token: str, hint: str | None) -> dict[str, Any]:
    if len(token) > 8192:
        return INACTIVE
    order = (
        ["refresh_token", "access_token"] if hint == "refresh_token" else ["access_token", "refresh_token"]
    )
    for kind in order:
        result = await (
            _refresh(server, caller, token) if kind == "refresh_token" else _access(server, token)
        )
        if result is not None:
            return result
    return INACTIVE


async def _access(server: OAuthServer, token: str) -> dict[str, Any] | None:
    if token.count(".") != 2:
        return None
    try:
        # Signature, expiry, revocation and the parties in one read (OAuthServer.check_access_token).
        claims, parties_active = await server.check_access_token(token)
    except InvalidToken:
        return None
    if not parties_active:
        # Signed by Tessera but its client was deleted or disabled, or its user disabled: inactive, and
        # nothing more is said (RFC 7662 2.2). INACTIVE rather than None: it must not be tried as a refresh
        # token either.
        return INACTIVE
    body: dict[str, Any] = {"active": True, "token_type": "Bearer"}
    for name in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "auth_time", "acr", "amr"):
        if name in claims:
            body[name] = claims[name]
    return body


async def _refresh(server: OAuthServer, caller: Client, token: str) -> dict[str, Any] | None:
    if len(token) > 512:
        return None
    async with server.db.read() as conn:
        record = await server.refresh_tokens.get(sha256_hex(token), conn=conn)
        if record is None:
            return None
        if (
            record.client_id != caller.client_id
            or record.revoked_at is not None
            or record.rotated_at is not None
            or record.expires_at <= server.now()
            or await server.revocations.any_revoked([f"grant:{record.grant_id}"], conn=conn)
        ):
            return INACTIVE
    if record.user_id:
        # The refresh grant refuses a disabled user's refresh token, so introspection says so too.
        user = await server.services.users.get(record.user_id)
        if user is None or user.disabled:
            return INACTIVE
    body: dict[str, Any] = {
        "active": True,
        "token_type": "refresh_token",
        "scope": record.scope,
        "client_id": record.client_id,
        "iss": server.issuer,
        "exp": int(record.expires_at.timestamp()),
        "iat": int(record.created_at.timestamp()),
    }
    if record.user_id:
        body["sub"] = record.user_id
    return body
