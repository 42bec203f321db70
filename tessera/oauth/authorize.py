"""The authorization endpoint (RFC 6749 4.1.1, OIDC Core 3.1.2), without the HTTP framework.

The request is checked in two stages, as RFC 6749 4.1.2.1 orders:

1. the client and the redirect URI. If either is wrong the user agent must *not* be redirected (it would
   hand an attacker the response), so these failures raise ``AuthorizePageError`` and become an error page;
2. everything else. These failures are sent back to the client's redirect URI with ``error``, ``state``
   and ``iss`` (RFC 9207).

Then ``decide`` says what happens next: the user signs in, the user consents, or a code is issued.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from tessera.audit.log import AuditEvent, EventType
from tessera.core.errors import InvalidRequest, InvalidScope, OAuthError
from tessera.core.ids import new_id, new_secret, sha256_hex
from tessera.oauth import pkce
from tessera.oauth.clients import Client
from tessera.oauth.params import Params
from tessera.oauth.resources import Api
from tessera.oauth.scopes import OIDC_SCOPES, OPENID, join, parse
from tessera.oauth.storage import CodeRecord
from tessera.oauth.targets import check_scopes, requested_apis

if TYPE_CHECKING:
    from tessera.oauth.server import OAuthServer

PROMPTS = {"none", "login", "consent", "select_account"}
RESPONSE_MODES = ("query", "form_post")  # OAuth 2.0 Form Post Response Mode


class AuthorizePageError(Exception):
    """A failure the client must not be told through a redirect (RFC 6749 4.1.2.1, 3.1.2.4)."""

    def __init__(self, title: str, message: str, code: str = "invalid_request"):
        super().__init__(message)
        self.title = title
        self.message = message
        self.code = code


@dataclass(frozen=True)
class AuthorizationRequest:
    client: Client
    redirect_uri: str
    state: str | None
    scopes: list[str]
    apis: list[Api]
    nonce: str | None
    code_challenge: str
    code_challenge_method: str
    prompt: frozenset[str]
    max_age: int | None
    login_hint: str | None
    params: Params = field(repr=False)
    response_mode: str = "query"

    @property
    def resources(self) -> list[str]:
        return [api.identifier for api in self.apis]


@dataclass(frozen=True)
class NeedsLogin:
    force: bool


@dataclass(frozen=True)
class NeedsConsent:
    scopes: list[str]  # everything asked for; ``new`` is what the user has not granted yet
    new: list[str]


@dataclass(frozen=True)
class Ready:
    pass


Decision = NeedsLogin | NeedsConsent | Ready


@dataclass(frozen=True)
class AuthorizationResponse:
    """What goes back to the client: in the redirect URI's query, or POSTed there (form_post)."""

    redirect_uri: str
    values: dict[str, str]
    mode: str = "query"

    @property
    def location(self) -> str:
        return with_query(self.redirect_uri, self.values)


def response_mode_of(params: Params) -> str:
    """The response mode to answer in, even for a request that fails later checks."""
    try:
        mode = params.get("response_mode")
    except InvalidRequest:
        return "query"
    return mode if mode in RESPONSE_MODES else "query"


def with_query(uri: str, values: dict[str, str]) -> str:
    """Add parameters to a redirect URI, keeping its own query (RFC 6749 3.1.2)."""
    parts = urlsplit(uri)
    extra = urlencode(values)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


class AuthorizationEndpoint:
    def __init__(self, server: OAuthServer):
        self._server = server

    # --- stage 1: client and redirect URI ---

    async def client_and_redirect(self, params: Params) -> tuple[Client, str]:
        try:
            client_id = params.get("client_id")
            redirect_uri = params.get("redirect_uri")
        except InvalidRequest as exc:
            raise AuthorizePageError("Invalid request", exc.description) from exc
        if not client_id:
            raise AuthorizePageError("Invalid request", "The request has no client_id.")
        client = await self._server.clients.get(client_id)
        if client is None or client.disabled:
            raise AuthorizePageError(
                "Unknown application", "This application is not registered here.", "invalid_client"
            )
        if redirect_uri is None:
            # RFC 6749 3.1.2.3: optional only when exactly one is registered.
            if len(client.redirect_uris) != 1:
                raise AuthorizePageError("Invalid request", "The request has no redirect_uri.")
            redirect_uri = client.redirect_uris[0]
        elif not client.redirect_uri_allowed(redirect_uri):
            raise AuthorizePageError(
                "Invalid redirect URI",
                "The application asked to return to an address it did not register.",
            )
        return client, redirect_uri

    # --- stage 2: the rest of the request ---

    async def validate(self, params: Params, client: Client, redirect_uri: str) -> AuthorizationRequest:
        if "request" in params or "request_uri" in params:
            raise OAuthError("request objects are not supported", code="request_not_supported")
        response_type = params.get("response_type")
        if response_type is None:
            raise InvalidRequest("response_type is required")
        if response_type != "code" or "code" not in client.response_types:
            raise OAuthError("only response_type=code is supported", code="unsupported_response_type")
        if "authorization_code" not in client.grant_types:
            raise OAuthError("this client may not use the code flow", code="unauthorized_client")
        response_mode = params.get("response_mode")
        if response_mode is not None and response_mode not in RESPONSE_MODES:
            raise InvalidRequest(f"response_mode {response_mode!r} is not supported")
        challenge, method = pkce.check_challenge(
            params.get("code_challenge"), params.get("code_challenge_method")
        )
        apis = await requested_apis(params, self._server.apis)
        requested = parse(params.get("scope"))
        if not requested and client.scope:
            requested = parse(client.scope)  # RFC 6749 3.3: the registered default
        if not requested:
            raise InvalidScope("scope is required")
        scopes = check_scopes(requested, apis, client, user_present=True)
        prompt = frozenset(parse(params.get("prompt")))
        if not prompt <= PROMPTS:
            raise InvalidRequest("unknown prompt value")
        if "none" in prompt and len(prompt) > 1:
            raise InvalidRequest("prompt=none cannot be combined with other values (OIDC Core 3.1.2.1)")
        max_age_text = params.get("max_age")
        max_age = None
        if max_age_text is not None:
            if not max_age_text.isdigit() or len(max_age_text) > 9:
                raise InvalidRequest("max_age must be a number of seconds")
            max_age = int(max_age_text)
        nonce = params.get("nonce")
        if nonce is not None and len(nonce) > 512:
            raise InvalidRequest("nonce is too long")
        state = params.get("state")
        if state is not None and len(state) > 2048:
            raise InvalidRequest("state is too long")
        login_hint = params.get("login_hint")
        return AuthorizationRequest(
            client=client,
            redirect_uri=redirect_uri,
            state=state,
            scopes=scopes,
            apis=apis,
            nonce=nonce,
            code_challenge=challenge,
            code_challenge_method=method,
            prompt=prompt,
            max_age=max_age,
            login_hint=login_hint[:320] if login_hint else None,
            params=params,
            response_mode=response_mode or "query",
        )

    # --- what happens next ---

    async def decide(self, request: AuthorizationRequest, session: Any | None) -> Decision:
        server = self._server
        no_ui = "none" in request.prompt
        if session is None:
            if no_ui:
                raise OAuthError("the user is not signed in", code="login_required")
            return NeedsLogin(force=False)
        if request.prompt & {"login", "select_account"}:
            # select_account (OIDC Core 3.1.2.1): a browser holds one session, so choosing an account is
            # signing in again, as whichever account the user picks on the login page.
            return NeedsLogin(force=True)
        if request.max_age is not None:
            age = server.clock.now() - session.auth_time.timestamp()
            if age > request.max_age:
                if no_ui:
                    raise OAuthError("the user must sign in again (max_age)", code="login_required")
                return NeedsLogin(force=True)
        user = await server.services.users.get(session.user_id)
        if user is None or user.disabled:
            if no_ui:
                raise OAuthError("the user is not signed in", code="login_required")
            return NeedsLogin(force=True)
        asked = set(request.scopes) | {f"resource:{r}" for r in request.resources}
        if request.client.first_party and "consent" not in request.prompt:
            return Ready()
        async with server.db.read() as conn:
            consent = await server.consents.get(session.user_id, request.client.client_id, conn=conn)
        granted = (
            set() if consent is None else set(consent.scopes) | {f"resource:{r}" for r in consent.resources}
        )
        new = sorted(asked - granted)
        if new or "consent" in request.prompt:
            if no_ui:
                raise OAuthError("the user has not consented", code="consent_required")
            return NeedsConsent(scopes=request.scopes, new=[s for s in new if not s.startswith("resource:")])
        return Ready()

    async def issue_code(
        self,
        request: AuthorizationRequest,
        session: Any,
        *,
        consented: bool,
        ip: str | None,
        user_agent: str | None,
    ) -> AuthorizationResponse:
        """Store a code (and, after the consent form, the consent) and say where it goes."""
        server = self._server
        now = server.now()
        code = new_secret(32)
        async with server.db.transaction() as conn:
            if consented:
                await server.consents.grant(
                    session.user_id,
                    request.client.client_id,
                    set(request.scopes),
                    set(request.resources),
                    now,
                    conn=conn,
                )
                await server.audit(
                    AuditEvent(
                        EventType.CONSENT_GIVEN,
                        user_id=session.user_id,
                        client_id=request.client.client_id,
                        session_id=session.id,
                        ip=ip,
                        user_agent=user_agent,
                        details={"scope": join(request.scopes), "resources": request.resources},
                    ),
                    conn=conn,
                )
            await server.codes.insert(
                CodeRecord(
                    code_hash=sha256_hex(code),
                    grant_id=new_id(),
                    client_id=request.client.client_id,
                    user_id=session.user_id,
                    session_id=session.id,
                    redirect_uri=request.redirect_uri,
                    scope=join(request.scopes),
                    resources=request.resources,
                    nonce=request.nonce,
                    code_challenge=request.code_challenge,
                    code_challenge_method=request.code_challenge_method,
                    auth_time=session.auth_time,
                    amr=list(session.amr or []) or None,
                    acr=getattr(session, "acr", None),
                    created_at=now,
                    expires_at=now + timedelta(seconds=server.settings.authorization_code_ttl),
                ),
                conn=conn,
            )
            # Back-channel logout (tessera/oauth/logout.py) tells this client when the session ends.
            await server.logout.remember(
                session.id, session.user_id, request.client.client_id, now, conn=conn
            )
        values = {"code": code}
        if request.state is not None:
            values["state"] = request.state
        values["iss"] = server.issuer  # RFC 9207 2
        return AuthorizationResponse(request.redirect_uri, values, request.response_mode)

    def error_redirect(
        self, redirect_uri: str, error: OAuthError, state: str | None, mode: str = "query"
    ) -> AuthorizationResponse:
        values = {"error": error.code}
        if error.description:
            values["error_description"] = error.description
        if state is not None:
            values["state"] = state
        values["iss"] = self._server.issuer
        return AuthorizationResponse(redirect_uri, values, mode)

    async def deny(self, request: AuthorizationRequest) -> AuthorizationResponse:
        return self.error_redirect(
            request.redirect_uri,
            OAuthError("the user denied the request", code="access_denied"),
            request.state,
            request.response_mode,
        )

    def return_to(self, params: Params, *, drop_login_prompt: bool) -> str:
        """The URL that brings the user back to this authorization request after signing in.

        After a forced sign-in, ``prompt=login`` (or ``select_account``) is dropped so the user is not asked
        again and again; the fresh ``auth_time`` in the ID token tells the client the sign-in happened (OIDC
        Core 3.1.2.1).
        """
        pairs = []
        for name, value in params.items():
            if name == "prompt" and drop_login_prompt:
                remaining = [p for p in value.split() if p not in ("login", "select_account")]
                if not remaining:
                    continue
                value = " ".join(remaining)
            pairs.append((name, value))
        return "/authorize?" + urlencode(pairs)

    def describe_scopes(self, request: AuthorizationRequest) -> list[dict[str, str]]:
        """What each scope lets the client do, for the consent page."""
        described = []
        for scope in request.scopes:
            if scope in OIDC_SCOPES:
                described.append({"scope": scope, "text": OIDC_SCOPES[scope], "api": ""})
                continue
            for api in request.apis:
                if scope in api.scopes:
                    described.append({"scope": scope, "text": api.scopes[scope] or scope, "api": api.name})
                    break
        return described

    @staticmethod
    def oidc(request: AuthorizationRequest) -> bool:
        return OPENID in request.scopes
