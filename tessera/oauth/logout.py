"""OpenID Connect RP-Initiated Logout 1.0 and Back-Channel Logout 1.0, without the HTTP framework.

RP-initiated logout (``/oidc/logout``, section 2 and 3): the client sends the browser with ``id_token_hint``,
``client_id``, ``post_logout_redirect_uri``, ``state``, ``logout_hint``. A ``post_logout_redirect_uri`` is
used only when it exactly matches one the client registered (``post_logout_redirect_uris``) and the client
is known from ``client_id`` or the hint's ``aud`` (section 3); otherwise nobody is redirected. An
``id_token_hint`` must carry our signature and our ``iss`` (it may have expired: section 2 says the OP should
accept it). When the hint names the signed-in session (its ``sid``) the request is trusted and the session
ends at once; any other request gets a confirmation page with CSRF protection (section 6: logout requests can
be forged).

Back-channel logout: every client that received a code in the ended session (recorded when the code was
issued, table ``oauth_logout_participants``) and registered a ``backchannel_logout_uri`` gets a POST with a
Logout Token (section 2.4: ``typ: logout+jwt``; ``iss aud iat exp jti events sub sid``, never ``nonce``). The
POSTs go out concurrently after the response is sent, each bounded by a short timeout
(``backchannel_logout_timeout``). Clients that registered themselves (dynamic registration or a metadata
document) are reached only through ``SafeHttp``, so a self-registered client cannot aim the server at
internal addresses.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import Column, Index, PrimaryKeyConstraint, String, Table, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from tessera.audit.log import AuditEvent, EventType
from tessera.core.ids import new_id
from tessera.keys.keyring import KeyError_
from tessera.oauth.authorize import with_query
from tessera.oauth.clients import Client
from tessera.oauth.metadata_documents import FetchRefused, SafeHttp
from tessera.oauth.params import Params
from tessera.storage.schema import UTCDateTime, metadata

if TYPE_CHECKING:
    from tessera.oauth.server import OAuthServer

log = logging.getLogger("tessera.oauth.logout")

LOGOUT_PATH = "/oidc/logout"
LOGOUT_TOKEN_TYP = "logout+jwt"
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TTL = 120  # seconds; Back-Channel Logout 2.4 recommends a short lifetime
SELF_REGISTERED = frozenset({"dynamic", "metadata_document"})

oauth_logout_participants = Table(
    "oauth_logout_participants",
    metadata,
    Column("session_id", String(64), nullable=False),
    Column("client_id", String(2048), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("session_id", "client_id", name="pk_oauth_logout_participants"),
    Index("ix_oauth_logout_participants_expires_at", "expires_at"),
)


class LogoutError(Exception):
    """A logout request that must end on an error page, never on a redirect."""

    def __init__(self, title: str, message: str):
        super().__init__(message)
        self.title = title
        self.message = message


@dataclass(frozen=True)
class LogoutRequest:
    client: Client | None
    redirect_uri: str | None  # the validated post_logout_redirect_uri
    state: str | None
    hint: dict[str, Any] | None  # the verified id_token_hint's claims
    logout_hint: str | None

    def trusted_for(self, session: Any) -> bool:
        """True when the hint proves the client knows this very session (or at least its user)."""
        if self.hint is None or session is None:
            return False
        sid = self.hint.get("sid")
        if isinstance(sid, str):
            return sid == session.id
        return self.hint.get("sub") == session.user_id

    def location(self) -> str | None:
        if self.redirect_uri is None:
            return None
        return with_query(self.redirect_uri, {"state": self.state}) if self.state else self.redirect_uri


@dataclass(frozen=True)
class Delivery:
    client_id: str
    uri: str
    status: int | None  # None when it could not be delivered
    error: str | None = None


class LogoutService:
    def __init__(self, server: OAuthServer):
        self._server = server
        timeout = server.settings.backchannel_logout_timeout
        self._http = httpx.AsyncClient(
            trust_env=False, follow_redirects=False, timeout=timeout, headers={"User-Agent": "tessera"}
        )
        self._safe_http = SafeHttp(timeout=timeout, max_bytes=16 * 1024)

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._safe_http.aclose()

    # --- who to tell ---

    async def remember(
        self, session_id: str | None, user_id: str, client_id: str, now: datetime, *, conn: AsyncConnection
    ) -> None:
        """Record that ``client_id`` got a code in this session (called as the code is issued)."""
        if not session_id:
            return
        table = oauth_logout_participants
        found = await conn.execute(
            select(table.c.client_id).where(table.c.session_id == session_id, table.c.client_id == client_id)
        )
        if found.first() is not None:
            return
        lifetime = timedelta(seconds=self._server.settings.session_ttl)
        await conn.execute(
            table.insert().values(
                session_id=session_id,
                client_id=client_id,
                user_id=user_id,
                created_at=now,
                expires_at=now + lifetime,
            )
        )

    async def sweep(self, limit: int = 100) -> int:
        """Notify the clients of sessions that ended some other way (the sign-out page, an admin, the risk
        engine): run it periodically, or right after ``services.sessions.end``. Returns how many sessions."""
        from tessera.identity.sessions import login_sessions

        table = oauth_logout_participants
        stmt = (
            select(table.c.session_id, table.c.user_id)
            .join(login_sessions, login_sessions.c.id == table.c.session_id)
            .where(login_sessions.c.ended_at.is_not(None))
            .distinct()
            .limit(limit)
        )
        async with self._server.db.read() as conn:
            ended = [(str(row[0]), str(row[1])) for row in await conn.execute(stmt)]
        for session_id, user_id in ended:
            await self.notify(session_id, user_id)
        return len(ended)

    async def participants(self, session_id: str) -> list[str]:
        table = oauth_logout_participants
        async with self._server.db.read() as conn:
            rows = await conn.execute(
                select(table.c.client_id).where(table.c.session_id == session_id).order_by(table.c.client_id)
            )
            return [str(row[0]) for row in rows]

    # --- RP-Initiated Logout 1.0 section 2 and 3 ---

    async def parse(self, params: Params) -> LogoutRequest:
        server = self._server
        hint_text = params.get("id_token_hint")
        client_id = params.get("client_id")
        redirect_uri = params.get("post_logout_redirect_uri")
        state = params.get("state")
        logout_hint = params.get("logout_hint")
        if state is not None and len(state) > 2048:
            raise LogoutError("Invalid request", "The state parameter is too long.")
        if logout_hint is not None and len(logout_hint) > 320:
            raise LogoutError("Invalid request", "The logout_hint parameter is too long.")
        hint = await self._verify_hint(hint_text) if hint_text is not None else None
        if hint is not None:
            audience = hint.get("aud")
            audiences = [audience] if isinstance(audience, str) else list(audience or [])
            if client_id is None:
                client_id = audiences[0] if len(audiences) == 1 and isinstance(audiences[0], str) else None
            elif client_id not in audiences:
                # Section 2: the client_id must be an audience of the hint.
                raise LogoutError("Invalid logout request", "The ID token was issued to another application.")
        client = None
        if client_id is not None:
            client = await server.clients.get(client_id)
            if client is None or client.disabled:
                raise LogoutError("Unknown application", "This application is not registered here.")
        if redirect_uri is not None:
            registered = client.metadata.get("post_logout_redirect_uris", []) if client else []
            # Section 3: exact match against what this client registered; a client must be identified.
            if client is None or not isinstance(registered, list) or redirect_uri not in registered:
                raise LogoutError(
                    "Invalid redirect address",
                    "The application asked to return to an address it did not register. You were not "
                    "sent there.",
                )
        return LogoutRequest(client, redirect_uri, state, hint, logout_hint)

    async def _verify_hint(self, token: str) -> dict[str, Any]:
        server = self._server
        if len(token) > 8192:
            raise LogoutError("Invalid logout request", "The ID token hint is not valid.")
        try:
            # typ "JWT" is what our ID tokens carry; access and logout tokens are refused by their typ.
            _header, claims = await server.services.keys.verify(token, typ="jwt")
        except KeyError_ as exc:
            raise LogoutError("Invalid logout request", "The ID token hint is not valid.") from exc
        # The signature is ours; the hint may have expired (section 2), but it must be an ID token of ours.
        if (
            claims.get("iss") != server.issuer
            or not isinstance(claims.get("sub"), str)
            or "aud" not in claims
        ):
            raise LogoutError("Invalid logout request", "The ID token hint is not valid.")
        return claims

    # --- ending the session ---

    async def end_session(
        self,
        session: Any,
        *,
        reason: str = "rp_logout",
        ip: str | None,
        user_agent: str | None,
        client_id: str | None = None,
    ) -> bool:
        """End the Tessera session (the back-channel notices are sent by ``notify``)."""
        services = self._server.services
        async with services.db.transaction() as conn:  # the ending and its audit event commit together
            ended = await services.sessions.end(session.id, reason, conn=conn)
            if ended:
                await services.audit.record(
                    AuditEvent(
                        EventType.LOGOUT,
                        user_id=session.user_id,
                        session_id=session.id,
                        client_id=client_id,
                        ip=ip,
                        user_agent=user_agent,
                        details={"reason": reason},
                    ),
                    conn=conn,
                )
        return ended

    # --- Back-Channel Logout 1.0 ---

    async def logout_token(self, client: Client, *, user_id: str, session_id: str) -> str:
        now = int(self._server.clock.now())
        keys = self._server.services.keys
        # A retired signing key stays published for keys.max_token_lifetime (the access and ID token
        # lifetimes); a logout token must not outlive it, or its signature could no longer be checked.
        lifetime = min(LOGOUT_TOKEN_TTL, keys.max_token_lifetime)
        claims = {
            "iss": self._server.issuer,
            "aud": client.client_id,
            "iat": now,
            "exp": now + lifetime,
            "jti": new_id(),
            "sub": user_id,
            "sid": session_id,
            "events": {BACKCHANNEL_EVENT: {}},
        }
        token, _key = await keys.sign(claims, typ=LOGOUT_TOKEN_TYP)
        return token

    async def notify(self, session_id: str, user_id: str) -> list[Delivery]:
        """Send a logout token to every client of the session that asked for one; all at once, bounded."""
        targets: list[tuple[Client, str]] = []
        for client_id in await self.participants(session_id):
            client = await self._server.clients.get(client_id)
            uri = client.metadata.get("backchannel_logout_uri") if client is not None else None
            if client is not None and isinstance(uri, str) and uri:
                targets.append((client, uri))
        results = list(await asyncio.gather(*(self._deliver(c, u, user_id, session_id) for c, u in targets)))
        async with self._server.db.transaction() as conn:
            await conn.execute(
                delete(oauth_logout_participants).where(oauth_logout_participants.c.session_id == session_id)
            )
            await conn.execute(
                delete(oauth_logout_participants).where(
                    oauth_logout_participants.c.expires_at < self._server.now()
                )
            )
        return results

    async def _deliver(self, client: Client, uri: str, user_id: str, session_id: str) -> Delivery:
        token = await self.logout_token(client, user_id=user_id, session_id=session_id)
        try:
            if client.source in SELF_REGISTERED:
                response = await self._safe_http.request(
                    "POST", uri, data={"logout_token": token}, accept="*/*"
                )
                status = response.status
            else:
                posted = await self._http.post(uri, data={"logout_token": token})
                status = posted.status_code
        except (httpx.HTTPError, FetchRefused) as exc:
            log.warning("back-channel logout to %s failed: %s", client.client_id, exc)
            return Delivery(client.client_id, uri, None, str(exc) or type(exc).__name__)
        # Section 2.8: 200 (or 204) means done; 400 means the RP refused the token.
        if status not in (200, 204):
            log.warning("back-channel logout to %s answered %s", client.client_id, status)
        return Delivery(client.client_id, uri, status)


def logout_metadata(server: OAuthServer) -> dict[str, Any]:
    """Discovery fields (RP-Initiated Logout 3, Back-Channel Logout 2.1)."""
    return {
        "end_session_endpoint": f"{server.issuer}{LOGOUT_PATH}",
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
    }


__all__ = [
    "BACKCHANNEL_EVENT",
    "LOGOUT_PATH",
    "LOGOUT_TOKEN_TYP",
    "Delivery",
    "LogoutError",
    "LogoutRequest",
    "LogoutService",
    "logout_metadata",
    "oauth_logout_participants",
]
