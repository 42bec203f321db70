"""The authorization server, assembled from its parts (built once per ``Services``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from tessera.audit.log import AuditEvent, EventType
from tessera.core.errors import InvalidClient, InvalidRequest, InvalidToken, OAuthError
from tessera.core.ratelimit import RateDecision, RateLimited
from tessera.oauth.client_auth import AuthenticatedClient, ClientAuthenticator
from tessera.oauth.clients import ClientCache, NewClient, SqlClientStore, build_client
from tessera.oauth.grants import GrantRegistry, TokenRequest
from tessera.oauth.params import Params
from tessera.oauth.resources import Api, ApiRegistry, SqlApiStore, build_api
from tessera.oauth.storage import (
    SqlCodeStore,
    SqlConsentStore,
    SqlJtiStore,
    SqlRefreshTokenStore,
    SqlRevocationStore,
    SqlTokenStates,
    TokenState,
)
from tessera.oauth.stores import (
    ApiStore,
    ClientStore,
    CodeStore,
    ConsentStore,
    JtiStore,
    RefreshTokenStore,
    RevocationStore,
)
from tessera.oauth.tokens import TokenIssuer, TokenResponse

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from tessera.services import Services


log = logging.getLogger("tessera.oauth")
PURGE_EVERY = 600.0  # seconds between purges of expired codes, jtis, revocations, refresh tokens


class OAuthServer:
    def __init__(self, services: Services):
        from tessera.oauth.audit_buffer import AuditBuffer
        from tessera.oauth.grants.authorization_code import AuthorizationCodeGrant
        from tessera.oauth.grants.client_credentials import ClientCredentialsGrant
        from tessera.oauth.grants.refresh_token import RefreshTokenGrant

        self.services = services
        self.settings = services.settings
        self.clock = services.clock
        self.db = services.db
        self.issuer = services.settings.issuer
        self.token_endpoint = f"{self.issuer}/oauth/token"
        # The stores, typed by their protocols (stores.py): everything below depends on those only.
        self.client_store: ClientStore = SqlClientStore(self.db, self.clock)
        self.clients = ClientCache(self.client_store, services.settings.cache_ttl)
        self.api_store: ApiStore = SqlApiStore(self.db)
        self.apis = ApiRegistry(self.api_store, services.settings.cache_ttl)
        self.codes: CodeStore = SqlCodeStore()
        self.refresh_tokens: RefreshTokenStore = SqlRefreshTokenStore()
        self.revocations: RevocationStore = SqlRevocationStore(self.db)
        self.consents: ConsentStore = SqlConsentStore()
        self.jtis: JtiStore = SqlJtiStore(self.db)
        self.token_states = SqlTokenStates(self.db)
        self.tokens = TokenIssuer(services.keys, self.revocations, self.clock, services.settings)
        self.http = httpx.AsyncClient(headers={"User-Agent": "tessera"})
        self.authenticator = ClientAuthenticator(
            self.clients,
            self.jtis,
            self.clock,
            self.http,
            issuer=self.issuer,
            jwks_uri_ttl=services.settings.jwks_uri_cache_ttl,
        )
        self.audit_buffer = AuditBuffer(self.db, self.clock)
        self._issued_counters: dict[str, Any] = {}
        # IPs over the failure limit, until when (clock seconds). The counts live in the rate limiter (shared
        # by every process); this only lets a blocked IP be refused before any work, at the cost of one
        # dictionary truth test on the success path.
        self._blocked: dict[str, float] = {}
        self._purged_at = time.monotonic()
        self._purge_task: asyncio.Task[None] | None = None
        self.grants = GrantRegistry()
        self.grants.register(AuthorizationCodeGrant(self))
        self.grants.register(RefreshTokenGrant(self))
        self.grants.register(ClientCredentialsGrant(self))
        # Registration (RFC 7591/7592), Client ID Metadata Documents and logout: registration.py,
        # metadata_documents.py, logout.py.
        from tessera.oauth.logout import LogoutService
        from tessera.oauth.metadata_documents import MetadataDocuments
        from tessera.oauth.registration import Registrar

        self.registrar = Registrar(self)
        self.metadata_documents = MetadataDocuments(self)
        self.clients.url_resolver = self.metadata_documents.resolve
        self.authenticator.guarded_get = self.metadata_documents.guarded_get
        self.logout = LogoutService(self)

    # --- helpers the grants share ---

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC)

    def build_client(self, **metadata: Any) -> NewClient:
        """Validate client metadata and make a client and its secret (``clients.build_client``); nothing is
        stored yet."""
        return build_client(self.now(), **metadata)

    def build_api(
        self, identifier: str, *, scopes: list[str] | dict[str, str] | None = None, name: str | None = None
    ) -> Api:
        """Validate and make an API (``resources.build_api``); nothing is stored yet."""
        return build_api(identifier, now=self.now(), scopes=scopes, name=name)

    @property
    def max_access_token_ttl(self) -> int:
        return self.settings.access_token_ttl

    async def revoke_grant(self, grant_id: str, reason: str, *, conn: AsyncConnection) -> int:
        """Revoke everything issued under one grant: its refresh tokens now, its access tokens by record."""
        now = self.now()
        await self.revocations.add(
            f"grant:{grant_id}", reason, now, now + timedelta(seconds=self.max_access_token_ttl), conn=conn
        )
        return await self.refresh_tokens.revoke_family(grant_id, now, conn=conn)

    async def token_parties_active(self, claims: Mapping[str, Any]) -> bool:
        """Whether the client and the user an access token was issued to still exist and are enabled.

        A JWT stays well signed after its client is deleted (RFC 7592 2.3, the management API) or its user is
        disabled, so introspection (RFC 7662 2.2: "active" means the token "has not been revoked by the
        resource owner" and is usable), userinfo and the management API ask here too. Both reads are
        authoritative (the database, not the client cache), so a change made in any process counts at once;
        they are one statement (``SqlTokenStates``). https client ids (Client ID Metadata Documents) have no
        row and go through their resolver.
        """
        return await self._parties_active(claims, await self._token_state(claims, []))

    async def check_access_token(self, token: str) -> tuple[dict[str, Any], bool]:
        """The claims of a valid, unrevoked access token, and whether its client and user are still active
        (as :meth:`token_parties_active` says); ``invalid_token`` for a token ``TokenIssuer`` refuses (bad
        signature, not ``at+jwt``, another issuer, expired) or one that was revoked by jti or by grant.

        The revocation records, the client and the user are read in one statement instead of three: this is
        the cost of a bearer token on every call to /fga and /api/v1. The parties' answer is returned rather
        than raised so that a caller can rank its own checks (audience, scope) before it, as /fga does.
        """
        claims = await self.tokens.verify_access_token(token, check_revocation=False)
        state = await self._token_state(claims, TokenIssuer.revocation_keys(claims))
        if state.revoked:
            raise InvalidToken("the access token was revoked")
        return claims, await self._parties_active(claims, state)

    def _token_state(self, claims: Mapping[str, Any], revocation_keys: list[str]) -> Awaitable[TokenState]:
        client_id = str(claims.get("client_id", ""))
        subject = claims.get("sub")
        return self.token_states.read(
            revocation_keys,
            None if client_id.startswith("https://") else client_id,
            # A client's own token (client credentials, sub == client_id) has no user to look up.
            subject if isinstance(subject, str) and subject != client_id else None,
        )

    async def _parties_active(self, claims: Mapping[str, Any], state: TokenState) -> bool:
        client_id = str(claims.get("client_id", ""))
        if client_id.startswith("https://"):
            client = await self.clients.get(client_id)
            if client is None or client.disabled:
                return False
        elif state.client_disabled is not False:  # no such client (None), or disabled (True)
            return False
        subject = claims.get("sub")
        if not isinstance(subject, str) or subject == client_id:
            return True  # a client's own token (client credentials): the client check is the whole story
        if state.user_disabled is None:
            # A token of a user grant (it carries "gid") whose user was deleted is dead; other subjects
            # (grants that name someone Tessera has no account for) are judged by the client alone.
            return "gid" not in claims
        return not state.user_disabled

    async def verify_live_access_token(self, token: str) -> dict[str, Any]:
        """For APIs Tessera serves itself (/api/v1, /fga): a valid, unrevoked access token whose client and
        user are still active; ``invalid_token`` otherwise."""
        claims, active = await self.check_access_token(token)
        if not active:
            # The token's client was deleted or disabled (or its user disabled): it no longer speaks for
            # anyone, however long it has left.
            raise InvalidToken("the token's client or user is no longer active")
        return claims

    async def audit(self, event: AuditEvent, *, conn: AsyncConnection) -> None:
        await self.services.audit.record(event, conn=conn)

    # --- failure limits: the token, introspection and revocation endpoints ---

    @staticmethod
    def failure_key(ip: str | None, public_client_id: str | None = None) -> str:
        """Failures are counted per IP for client authentication, and per IP and public client for what a
        public client (which authenticates with its client_id alone) gets wrong: a stranger's guessing is
        caught either way, while an expired refresh token in one app behind a shared NAT blocks neither the
        other apps there nor the address."""
        where = ip or "unknown"
        return where if public_client_id is None else f"{where}|{public_client_id}"

    def refuse_if_blocked(self, key: str) -> None:
        """429 for a key that went over ``oauth_failure_rate_limit`` failures, until its window lets it in."""
        if not self._blocked:  # the hot path: nobody is blocked
            return
        until = self._blocked.get(key)
        if until is None:
            return
        wait = until - self.clock.now()
        if wait <= 0:
            del self._blocked[key]
            return
        raise RateLimited(
            RateDecision(False, 0, max(1, math.ceil(wait))),
            "too many failed requests from this address; retry later",
        )

    async def count_failure(self, key: str, *, ip: str | None, endpoint: str, user_agent: str | None) -> None:
        """Count one failed request under ``key`` (``failure_key``; only failures are counted, so successful
        requests never touch the limiter); past the limit raise ``RateLimited`` (429 with Retry-After, RFC
        6585 4) and refuse that key's requests before any work until the sliding window allows it again."""
        decision = await self.services.rate_limiter.hit(
            f"oauth:failures:{key}",
            limit=self.settings.oauth_failure_rate_limit,
            window_seconds=self.settings.oauth_failure_rate_window,
        )
        if decision.allowed:
            return
        if len(self._blocked) >= 10_000:  # bounded: many blocked keys at once start the map over
            self._blocked.clear()
        self._blocked[key] = self.clock.now() + decision.retry_after
        self.audit_buffer.add(
            AuditEvent(
                EventType.RATE_LIMITED,
                ip=ip,
                user_agent=user_agent,
                details={
                    "endpoint": endpoint,
                    "limit": "oauth_failures",
                    "key": key,
                    "retry_after": decision.retry_after,
                },
            )
        )
        raise RateLimited(decision, "too many failed requests from this address; retry later")

    # --- endpoints' cores ---

    async def authenticate_client(
        self,
        params: Params,
        authorization: str | None,
        *,
        endpoint: str,
        ip: str | None,
        user_agent: str | None,
        require_confidential: bool = False,
    ) -> AuthenticatedClient:
        if self._blocked:  # inlined truth test: the success path pays nothing more while nobody is blocked
            self.refuse_if_blocked(self.failure_key(ip))
        try:
            return await self.authenticator.authenticate(
                params, authorization, endpoint=endpoint, require_confidential=require_confidential
            )
        except InvalidClient:
            claimed = None
            with contextlib.suppress(InvalidRequest):
                claimed = params.get("client_id")
            self.audit_buffer.add(
                AuditEvent(
                    EventType.CLIENT_AUTH_FAILED,
                    client_id=claimed,
                    ip=ip,
                    user_agent=user_agent,
                    details={"endpoint": endpoint},
                )
            )
            await self.count_failure(self.failure_key(ip), ip=ip, endpoint=endpoint, user_agent=user_agent)
            raise

    async def token(
        self,
        params: Params,
        authorization: str | None,
        *,
        ip: str | None = None,
        user_agent: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> TokenResponse:
        """RFC 6749 3.2: authenticate the client, find the grant's handler, let it answer."""
        grant_type = params.require("grant_type")
        authenticated = await self.authenticate_client(
            params, authorization, endpoint=self.token_endpoint, ip=ip, user_agent=user_agent
        )
        public = authenticated.method == "none"
        if public and self._blocked:
            self.refuse_if_blocked(self.failure_key(ip, authenticated.client.client_id))
        try:
            handler = self.grants.handler_for(grant_type)
            self.grants.check_client(handler, authenticated.client, authenticated.method)
            # Load (or, the first time ever, create) the signing key before a grant opens its transaction:
            # on SQLite that transaction holds the write lock, and creating the key inside it would wait on
            # itself.
            await self.services.keys.active()
            response = await handler.handle(
                TokenRequest(
                    params=params,
                    client=authenticated.client,
                    auth_method=authenticated.method,
                    ip=ip,
                    user_agent=user_agent,
                    headers=headers,
                )
            )
        except RateLimited:
            raise
        except OAuthError:
            # A public client authenticates with its client_id alone, so a stranger can reach the grants:
            # their failures (invalid_grant from guessed codes or refresh tokens, ...) count as well. A
            # confidential client that proved its secret is no stranger: its mistakes are not counted.
            if public:
                await self.count_failure(
                    self.failure_key(ip, authenticated.client.client_id),
                    ip=ip,
                    endpoint=self.token_endpoint,
                    user_agent=user_agent,
                )
            raise
        counter = self._issued_counters.get(grant_type)
        if counter is None:  # labels() takes a lock and builds a tuple: look each child up once
            counter = self._issued_counters[grant_type] = self.services.metrics.tokens_issued.labels(
                grant_type=grant_type
            )
        counter.inc()
        self._maybe_purge()
        return response

    def _maybe_purge(self) -> None:
        """Start a purge of expired rows every ``PURGE_EVERY`` seconds, in the background."""
        now = time.monotonic()
        if now - self._purged_at < PURGE_EVERY:
            return
        self._purged_at = now
        self._purge_task = asyncio.get_running_loop().create_task(self.purge_expired())

    async def purge_expired(self) -> None:
        """Delete what can no longer matter: expired jtis, revocation records and refresh tokens, and codes a
        day after they expired (kept that long so a late replay still revokes what the code issued)."""
        at = self.now()
        try:
            async with self.db.transaction() as conn:
                await self.codes.purge(at - timedelta(days=1), conn=conn)
                await self.refresh_tokens.purge(at, conn=conn)
                await self.revocations.purge(at, conn=conn)
            await self.jtis.purge(at)
        except Exception:  # housekeeping must never fail a request; the next round tries again
            log.exception("purging expired OAuth rows failed")

    async def aclose(self) -> None:
        await self.clients.settle()
        await self.apis.settle()
        await self.services.keys.settle()
        if self._purge_task is not None:
            with contextlib.suppress(Exception):
                await self._purge_task
        await self.audit_buffer.aclose()
        await self.http.aclose()
        await self.metadata_documents.aclose()
        await self.logout.aclose()


def details(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}
