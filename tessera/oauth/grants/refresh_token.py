"""RFC 6749 6: the refresh token grant, with rotation and reuse detection (RFC 9700 4.14.2).

Every use returns a new refresh token of the same family (grant) and retires the old one. If a retired token
comes back, either the client or an attacker holds a stolen copy: the whole family is revoked, and so are the
access tokens of the grant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from tessera.audit.log import AuditEvent, EventType
from tessera.core.errors import InvalidGrant, InvalidScope, InvalidTarget
from tessera.core.ids import sha256_hex
from tessera.oauth.grants import TokenRequest
from tessera.oauth.grants.issue import Authorization, issue_for_user
from tessera.oauth.scopes import parse
from tessera.oauth.tokens import TokenResponse

if TYPE_CHECKING:
    from tessera.oauth.server import OAuthServer


class RefreshTokenGrant:
    grant_type: ClassVar[str] = "refresh_token"
    client_auth_methods: ClassVar[frozenset[str] | None] = None

    def __init__(self, server: OAuthServer):
        self._server = server

    async def handle(self, request: TokenRequest) -> TokenResponse:
        server, client, params = self._server, request.client, request.params
        token = params.require("refresh_token")
        if len(token) > 512:
            raise InvalidGrant("the refresh token is not valid")
        requested_scope = parse(params.get("scope"))
        resources = params.getlist("resource")
        token_hash = sha256_hex(token)
        now = server.now()
        async with server.db.transaction() as conn:
            record = await server.refresh_tokens.get(token_hash, conn=conn)
            # RFC 6749 10.4: a refresh token is bound to its client.
            if record is None or record.client_id != client.client_id or record.user_id is None:
                raise InvalidGrant("the refresh token is not valid")
            if record.revoked_at is not None:
                raise InvalidGrant("the refresh token was revoked")
            if record.rotated_at is None and record.expires_at <= now:
                raise InvalidGrant("the refresh token expired")
            granted = record.scope.split()
            if record.rotated_at is None:
                # RFC 6749 6: a narrower scope is fine, a wider one is not.
                if any(s not in granted for s in requested_scope):
                    raise InvalidScope("the requested scope exceeds what was granted")
                if any(r not in record.resources for r in resources):
                    raise InvalidTarget("resource was not part of the authorization")
            if record.rotated_at is None and await server.refresh_tokens.mark_rotated(
                token_hash, now, conn=conn
            ):
                authorization = Authorization(
                    grant_id=record.grant_id,
                    client=client,
                    user_id=record.user_id,
                    scopes=granted,
                    resources=list(record.resources),
                    auth_time=record.auth_time,
                    amr=record.amr,
                    acr=record.acr,
                    session_id=record.session_id,
                )
                return await issue_for_user(
                    server,
                    authorization,
                    conn=conn,
                    grant_type=self.grant_type,
                    token_scopes=requested_scope or granted,
                    token_resources=resources or authorization.resources,
                    ip=request.ip,
                    user_agent=request.user_agent,
                )
            revoked = await server.revoke_grant(record.grant_id, "refresh_token_reused", conn=conn)
            await server.audit(
                AuditEvent(
                    EventType.REFRESH_TOKEN_REUSED,
                    user_id=record.user_id,
                    client_id=record.client_id,
                    session_id=record.session_id,
                    ip=request.ip,
                    user_agent=request.user_agent,
                    details={"grant_id": record.grant_id, "refresh_tokens_revoked": revoked},
                ),
                conn=conn,
            )
        raise InvalidGrant("the refresh token was already used; its grant is revoked")
