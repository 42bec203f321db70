"""What the user-facing grants share: minting an access token, an ID token and a refresh token for a grant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from tessera.audit.log import AuditEvent, EventType
from tessera.core.errors import InvalidGrant
from tessera.oauth.clients import Client
from tessera.oauth.scopes import OFFLINE_ACCESS, OPENID, join
from tessera.oauth.storage import RefreshRecord
from tessera.oauth.tokens import TokenResponse

if TYPE_CHECKING:
    from tessera.oauth.server import OAuthServer


@dataclass(frozen=True)
class Authorization:
    """What a user authorized: the basis of every token of one grant (one family)."""

    grant_id: str
    client: Client
    user_id: str
    scopes: list[str]  # granted (a token may carry fewer)
    resources: list[str]
    auth_time: datetime | None
    amr: list[str] | None
    acr: str | None
    session_id: str | None


async def active_user(server: OAuthServer, user_id: str) -> Any:
    user = await server.services.users.get(user_id)
    if user is None or getattr(user, "disabled", False):
        raise InvalidGrant("the user is not active")
    return user


async def issue_for_user(
    server: OAuthServer,
    authorization: Authorization,
    *,
    conn: AsyncConnection,
    grant_type: str,
    token_scopes: list[str],
    token_resources: list[str],
    nonce: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> TokenResponse:
    client = authorization.client
    user = await active_user(server, authorization.user_id)
    apis = await server.apis.by_identifier()
    audience = list(token_resources)
    if OPENID in token_scopes or not audience:
        # The userinfo endpoint is an audience of its own (see tokens.py).
        audience.append(server.tokens.userinfo_audience)
    ttls = [apis[r].access_token_ttl for r in token_resources if r in apis and apis[r].access_token_ttl]
    ttl = min([server.settings.access_token_ttl, *[t for t in ttls if t]])
    access = await server.tokens.access_token(
        client_id=client.client_id,
        subject=authorization.user_id,
        audience=audience,
        scope=join(token_scopes),
        ttl=ttl,
        grant_id=authorization.grant_id,
        auth_time=authorization.auth_time,
        amr=authorization.amr,
        acr=authorization.acr,
    )
    id_token = None
    if OPENID in token_scopes:
        id_token = await server.tokens.id_token(
            client_id=client.client_id,
            user=user,
            scopes=token_scopes,
            auth_time=authorization.auth_time,
            nonce=nonce,
            session_id=authorization.session_id,
            amr=authorization.amr,
            acr=authorization.acr,
            access_token=access.token,
        )
    refresh_token = None
    wants_refresh = OFFLINE_ACCESS in authorization.scopes or client.issues_refresh_without_offline_access
    if "refresh_token" in client.grant_types and wants_refresh:
        refresh_token, token_hash = server.tokens.new_refresh_token()
        now = server.now()
        await server.refresh_tokens.insert(
            RefreshRecord(
                token_hash=token_hash,
                grant_id=authorization.grant_id,
                client_id=client.client_id,
                user_id=authorization.user_id,
                session_id=authorization.session_id,
                scope=join(authorization.scopes),
                resources=list(authorization.resources),
                auth_time=authorization.auth_time,
                amr=authorization.amr,
                acr=authorization.acr,
                created_at=now,
                expires_at=now + timedelta(seconds=server.settings.refresh_token_ttl),
            ),
            conn=conn,
        )
    await server.audit(
        AuditEvent(
            EventType.TOKEN_ISSUED,
            user_id=authorization.user_id,
            client_id=client.client_id,
            session_id=authorization.session_id,
            ip=ip,
            user_agent=user_agent,
            details={
                "grant_type": grant_type,
                "grant_id": authorization.grant_id,
                "jti": access.jti,
                "scope": join(token_scopes),
                "refresh_token": refresh_token is not None,
                "id_token": id_token is not None,
            },
        ),
        conn=conn,
    )
    return TokenResponse(
        access_token=access.token,
        expires_in=ttl,
        scope=join(token_scopes) or None,
        refresh_token=refresh_token,
        id_token=id_token,
    )
