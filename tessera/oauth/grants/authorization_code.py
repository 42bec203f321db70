"""RFC 6749 4.1.3: the authorization code grant, with PKCE (RFC 7636 4.5) always required.

A code is used once. A second use is refused with ``invalid_grant`` and revokes every token issued from the
first (RFC 6749 4.1.2, RFC 9700 4.5), because it means the code leaked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from tessera.audit.log import AuditEvent, EventType
from tessera.core.errors import InvalidGrant, InvalidTarget
from tessera.core.ids import sha256_hex
from tessera.oauth import pkce
from tessera.oauth.grants import TokenRequest
from tessera.oauth.grants.issue import Authorization, issue_for_user
from tessera.oauth.tokens import TokenResponse

if TYPE_CHECKING:
    from tessera.oauth.server import OAuthServer


class AuthorizationCodeGrant:
    grant_type: ClassVar[str] = "authorization_code"
    client_auth_methods: ClassVar[frozenset[str] | None] = None

    def __init__(self, server: OAuthServer):
        self._server = server

    async def handle(self, request: TokenRequest) -> TokenResponse:
        server, client, params = self._server, request.client, request.params
        code = params.require("code")
        redirect_uri = params.get("redirect_uri")
        verifier = params.get("code_verifier")
        resources = params.getlist("resource")
        if len(code) > 512:
            raise InvalidGrant("the authorization code is not valid")
        code_hash = sha256_hex(code)
        now = server.now()
        replayed = False
        async with server.db.transaction() as conn:
            record = await server.codes.get(code_hash, conn=conn)
            if record is None:
                raise InvalidGrant("the authorization code is not valid")
            if record.consumed_at is None:
                # Checks before consuming: a request that fails them changes nothing.
                if record.client_id != client.client_id:
                    raise InvalidGrant("the authorization code was issued to another client")
                if record.expires_at <= now:
                    raise InvalidGrant("the authorization code expired")
                if redirect_uri is not None and redirect_uri != record.redirect_uri:
                    raise InvalidGrant("redirect_uri does not match the authorization request")
                pkce.verify(verifier, record.code_challenge, record.code_challenge_method)
                if any(r not in record.resources for r in resources):
                    raise InvalidTarget("resource was not part of the authorization")
            if record.consumed_at is not None or not await server.codes.consume(code_hash, now, conn=conn):
                replayed = True
                revoked = await server.revoke_grant(record.grant_id, "authorization_code_reused", conn=conn)
                await server.audit(
                    AuditEvent(
                        EventType.AUTHORIZATION_CODE_REUSED,
                        user_id=record.user_id,
                        client_id=record.client_id,
                        session_id=record.session_id,
                        ip=request.ip,
                        user_agent=request.user_agent,
                        details={
                            "grant_id": record.grant_id,
                            "refresh_tokens_revoked": revoked,
                            "presented_by": client.client_id,
                        },
                    ),
                    conn=conn,
                )
            else:
                authorization = Authorization(
                    grant_id=record.grant_id,
                    client=client,
                    user_id=record.user_id,
                    scopes=record.scope.split(),
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
                    token_scopes=authorization.scopes,
                    token_resources=resources or authorization.resources,
                    nonce=record.nonce,
                    ip=request.ip,
                    user_agent=request.user_agent,
                )
        assert replayed
        # Raised after the commit, so the revocation stays.
        raise InvalidGrant("the authorization code was already used; the tokens it issued are revoked")
