"""Token revocation (RFC 7009).

Revoking a refresh token revokes its whole grant: the family of refresh tokens and, through a revocation
record, the grant's JWT access tokens (RFC 7009 2.1 "SHOULD also invalidate all access tokens based on the
same authorization grant"). Revoking an access token records its jti until it would have expired. Unknown,
malformed and other clients' tokens get the same 200 and change nothing (RFC 7009 2.2).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tessera.audit.log import AuditEvent, EventType
from tessera.core.errors import InvalidToken
from tessera.core.ids import sha256_hex
from tessera.oauth.clients import Client

if TYPE_CHECKING:
    from tessera.oauth.server import OAuthServer


async def revoke(
    server: OAuthServer,
    caller: Client,
    token: str,
    hint: str | None,
    *,
    ip: str | None = None,
    user_agent: str | None = None,
) -> bool:
    """True when something was revoked (the HTTP answer is 200 either way)."""
    if len(token) > 8192:
        return False
    if token.count(".") == 2 and hint != "refresh_token":
        return await _access(server, caller, token, ip, user_agent)
    if await _refresh(server, caller, token, ip, user_agent):
        return True
    return token.count(".") == 2 and await _access(server, caller, token, ip, user_agent)


async def _refresh(
    server: OAuthServer, caller: Client, token: str, ip: str | None, user_agent: str | None
) -> bool:
    if len(token) > 512:
        return False
    async with server.db.transaction() as conn:
        record = await server.refresh_tokens.get(sha256_hex(token), conn=conn)
        if record is None or record.client_id != caller.client_id:
            return False
        count = await server.revoke_grant(record.grant_id, "revoked", conn=conn)
        await server.audit(
            AuditEvent(
                EventType.TOKEN_REVOKED,
                user_id=record.user_id,
                client_id=caller.client_id,
                session_id=record.session_id,
                ip=ip,
                user_agent=user_agent,
                details={"token_type": "refresh_token", "grant_id": record.grant_id, "refresh_tokens": count},
            ),
            conn=conn,
        )
    return True


async def _access(
    server: OAuthServer, caller: Client, token: str, ip: str | None, user_agent: str | None
) -> bool:
    try:
        claims = await server.tokens.verify_access_token(token, check_revocation=False)
    except InvalidToken:
        return False
    if claims.get("client_id") != caller.client_id:
        return False
    async with server.db.transaction() as conn:
        await server.revocations.add(
            f"jti:{claims['jti']}",
            "revoked",
            server.now(),
            datetime.fromtimestamp(float(claims["exp"]), UTC),
            conn=conn,
        )
        await server.audit(
            AuditEvent(
                EventType.TOKEN_REVOKED,
                user_id=claims.get("sub") if claims.get("sub") != caller.client_id else None,
                client_id=caller.client_id,
                ip=ip,
                user_agent=user_agent,
                details={"token_type": "access_token", "jti": claims["jti"]},
            ),
            conn=conn,
        )
    return True
