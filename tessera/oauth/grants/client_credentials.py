"""RFC 6749 4.4: client credentials. The hot path: no database write (the JWT is stateless) and the audit
event goes through the batching buffer."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from tessera.audit.log import AuditEvent, EventType
from tessera.core.errors import InvalidRequest
from tessera.oauth.clients import CONFIDENTIAL_METHODS
from tessera.oauth.grants import TokenRequest
from tessera.oauth.scopes import join, parse
from tessera.oauth.targets import check_scopes, default_api_scopes, requested_apis
from tessera.oauth.tokens import TokenResponse

if TYPE_CHECKING:
    from tessera.oauth.server import OAuthServer


class ClientCredentialsGrant:
    grant_type: ClassVar[str] = "client_credentials"
    # RFC 6749 4.4: only confidential clients.
    client_auth_methods: ClassVar[frozenset[str] | None] = frozenset(CONFIDENTIAL_METHODS)

    def __init__(self, server: OAuthServer):
        self._server = server

    async def handle(self, request: TokenRequest) -> TokenResponse:
        server, client = self._server, request.client
        targets = await requested_apis(request.params, server.apis)
        if not targets:
            raise InvalidRequest("name the API the token is for with resource (RFC 8707) or audience")
        requested = parse(request.params.get("scope"))
        scopes = (
            check_scopes(requested, targets, client, user_present=False)
            if requested
            else default_api_scopes(targets, client)
        )
        ttl = min(api.access_token_ttl or server.settings.access_token_ttl for api in targets)
        issued = await server.tokens.access_token(
            client_id=client.client_id,
            subject=client.client_id,
            audience=[api.identifier for api in targets],
            scope=join(scopes),
            ttl=ttl,
        )
        server.audit_buffer.add(
            AuditEvent(
                EventType.TOKEN_ISSUED,
                occurred_at=server.now(),
                client_id=client.client_id,
                ip=request.ip,
                user_agent=request.user_agent,
                details={"grant_type": self.grant_type, "jti": issued.jti, "aud": issued.claims["aud"]},
            )
        )
        return TokenResponse(access_token=issued.token, expires_in=ttl, scope=join(scopes) or None)
