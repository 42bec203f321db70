"""Dynamic client registration (RFC 7591) and its management protocol (RFC 7592), without the HTTP framework.

Who may register is the admin's choice (``TESSERA_REGISTRATION``): ``open`` (anyone, as MCP clients expect),
``token`` (an initial access token made with ``tessera clients initial-token``, RFC 7591 section 3) or
``off``.

- Metadata is checked field by field (RFC 7591 section 2); a bad redirect URI is ``invalid_redirect_uri`` and
  anything else ``invalid_client_metadata`` (section 3.2.2). Unknown fields are ignored (section 2: "MUST
  ignore"), and so are the ``tessera_*`` policy fields only an admin may set, so a client cannot raise its
  own privileges. Text such as ``client_name`` is kept as data: the pages escape it wherever it is shown.
- Each registered client gets a ``registration_access_token`` and a ``registration_client_uri`` (RFC 7592
  section 3) for GET, PUT and DELETE. Initial access tokens and registration access tokens are random (256
  bits) and kept only as SHA-256, like client secrets.
- Registration is rate limited per IP, so open registration cannot be used to fill the database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import Column, Integer, String, Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tessera.audit.log import AuditEvent, EventType
from tessera.core.errors import AccessDenied, InvalidToken, OAuthError, ValidationFailed
from tessera.core.ids import constant_time_equal, new_id, new_secret, sha256_hex
from tessera.core.ratelimit import RateLimited
from tessera.oauth.clients import AUTH_METHODS, Client
from tessera.settings import RegistrationPolicy
from tessera.storage.schema import UTCDateTime, metadata

if TYPE_CHECKING:
    from tessera.oauth.server import OAuthServer

REGISTRATION_PATH = "/oidc/register"
MAX_REGISTRATION_BYTES = 16 * 1024  # a metadata document is small; RFC 7591 sets no limit, we do
MAX_URIS = 20
MAX_URI_LENGTH = 2048
MAX_TEXT = 512
GRANTS = ("authorization_code", "refresh_token", "client_credentials")
# RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+\Z")
# Fields the server understands (RFC 7591 section 2, OIDC Registration 2, Back-Channel Logout 2.2,
# RP-Initiated Logout 3.1); everything else in a request is ignored.
URL_FIELDS = ("client_uri", "logo_uri", "tos_uri", "policy_uri")
TEXT_FIELDS = ("software_id", "software_version")
STORED_FIELDS = (
    *URL_FIELDS,
    *TEXT_FIELDS,
    "contacts",
    "post_logout_redirect_uris",
    "backchannel_logout_uri",
    "backchannel_logout_session_required",
)

oauth_initial_access_tokens = Table(
    "oauth_initial_access_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("id", String(26), nullable=False),
    Column("note", String(512)),
    Column("uses_left", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)


class InvalidRedirectUri(OAuthError):
    code = "invalid_redirect_uri"  # RFC 7591 section 3.2.2


class InvalidClientMetadata(OAuthError):
    code = "invalid_client_metadata"  # RFC 7591 section 3.2.2


def _is_loopback_http(parts: Any) -> bool:
    return parts.scheme == "http" and (parts.hostname or "").lower() in {"127.0.0.1", "::1", "localhost"}


def check_uri(value: Any, field: str, *, error: type[OAuthError], allow_loopback_http: bool = True) -> str:
    """An absolute https URL (or http on loopback), without a fragment or userinfo."""
    if not isinstance(value, str) or not value or len(value) > MAX_URI_LENGTH:
        raise error(f"{field} must be a URL of at most {MAX_URI_LENGTH} characters")
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in value):
        raise error(f"{field} contains spaces or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:
        raise error(f"{field} is not a URL") from exc
    if parts.fragment or "#" in value:
        raise error(f"{field} must not have a fragment")
    if parts.username is not None or parts.password is not None:
        raise error(f"{field} must not carry credentials")
    if not parts.hostname:
        raise error(f"{field} must be an absolute URL")
    if parts.scheme == "https":
        return value
    if allow_loopback_http and _is_loopback_http(parts):
        return value
    raise error(f"{field} must use https (plain http only on loopback)")


def check_redirect_uri(value: Any, *, public: bool) -> str:
    """RFC 6749 3.1.2, RFC 8252 7 and 8.3, RFC 9700 2.1: what a redirect URI may be."""
    if not isinstance(value, str) or not value or len(value) > MAX_URI_LENGTH:
        raise InvalidRedirectUri("each redirect URI must be a URL of at most 2048 characters")
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise InvalidRedirectUri("a redirect URI is not a URL") from exc
    scheme = parts.scheme.lower()
    if scheme in {"javascript", "data", "file", "vbscript", "blob", "about"}:
        raise InvalidRedirectUri(f"the {scheme!r} scheme is not allowed in a redirect URI")
    if scheme in {"http", "https"}:
        return check_uri(value, "redirect_uri", error=InvalidRedirectUri)
    if parts.fragment or "#" in value:
        raise InvalidRedirectUri("a redirect URI must not have a fragment (RFC 6749 3.1.2)")
    # RFC 8252 7.1: private-use schemes are for native (public) apps and are reverse domain names.
    if not public or not scheme or "." not in scheme:
        raise InvalidRedirectUri("private-use URI schemes are for native apps and look like com.example.app")
    return value


def _string_list(value: Any, field: str, *, limit: int = MAX_URIS) -> list[str]:
    if not isinstance(value, list) or len(value) > limit or not all(isinstance(v, str) for v in value):
        raise InvalidClientMetadata(f"{field} must be an array of at most {limit} strings")
    return list(value)


@dataclass(frozen=True)
class ClientRequest:
    """Validated registration metadata, ready for ``clients.build_client``."""

    client_name: str
    redirect_uris: list[str]
    grant_types: list[str]
    token_endpoint_auth_method: str
    scope: str | None
    jwks: dict[str, Any] | None
    jwks_uri: str | None
    extra: dict[str, Any]


def validate_metadata(data: Any, *, allow_secret_methods: bool = True) -> ClientRequest:
    """RFC 7591 section 2 and the OpenID extensions Tessera supports; raises the section 3.2.2 errors."""
    if not isinstance(data, dict):
        raise InvalidClientMetadata("the request body must be a JSON object")
    # Clients built on typed models (the MCP SDK's among them) send null for what they leave out.
    data = {key: value for key, value in data.items() if value is not None}
    # RFC 7591 2: token_endpoint_auth_method defaults to client_secret_basic.
    method = data.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in AUTH_METHODS:
        raise InvalidClientMetadata(f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}")
    if not allow_secret_methods and method in ("client_secret_basic", "client_secret_post"):
        raise InvalidClientMetadata("this client cannot use a shared secret")
    public = method == "none"
    grant_types = data.get("grant_types", ["authorization_code"])
    grant_types = _string_list(grant_types, "grant_types", limit=len(GRANTS))
    if (
        not grant_types
        or any(g not in GRANTS for g in grant_types)
        or len(set(grant_types)) != len(grant_types)
    ):
        raise InvalidClientMetadata(f"grant_types must be a subset of {', '.join(GRANTS)}")
    response_types = _string_list(data.get("response_types", ["code"]), "response_types", limit=2)
    if any(r != "code" for r in response_types):
        raise InvalidClientMetadata("only the 'code' response type is supported")
    # RFC 7591 2.1: grant_types and response_types must agree.
    if ("authorization_code" in grant_types) != ("code" in response_types):
        raise InvalidClientMetadata(
            "grant_type authorization_code and response_type code go together; response_types defaults to "
            '["code"] (RFC 7591 2.1): send "response_types": [] for a client without the code grant'
        )
    if "refresh_token" in grant_types and grant_types == ["refresh_token"]:
        raise InvalidClientMetadata("refresh_token alone grants nothing")
    if public and "client_credentials" in grant_types:
        raise InvalidClientMetadata("a public client cannot use client_credentials (RFC 6749 4.4)")
    redirect_uris = _string_list(data.get("redirect_uris", []), "redirect_uris")
    redirect_uris = [check_redirect_uri(uri, public=public) for uri in redirect_uris]
    if "authorization_code" in grant_types and not redirect_uris:
        raise InvalidRedirectUri("the authorization_code grant needs at least one redirect URI")
    name = data.get("client_name")
    if name is None:
        name = urlsplit(redirect_uris[0]).hostname if redirect_uris else None
        name = name or "Unnamed application"
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_TEXT:
        raise InvalidClientMetadata(f"client_name must be 1 to {MAX_TEXT} characters")
    scope = data.get("scope")
    if scope is not None:
        if not isinstance(scope, str) or len(scope) > 4096:
            raise InvalidClientMetadata("scope must be a space-separated string")
        tokens = scope.split(" ")
        if not all(_SCOPE_TOKEN.match(t) for t in tokens if t) or not any(tokens):
            raise InvalidClientMetadata("scope holds characters RFC 6749 3.3 does not allow")
        scope = " ".join(t for t in tokens if t)
    jwks, jwks_uri = data.get("jwks"), data.get("jwks_uri")
    if jwks is not None and jwks_uri is not None:
        raise InvalidClientMetadata("send jwks or jwks_uri, not both (RFC 7591 2)")
    if jwks is not None and (not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list)):
        raise InvalidClientMetadata("jwks must be a JWK Set")
    if jwks_uri is not None:
        jwks_uri = check_uri(jwks_uri, "jwks_uri", error=InvalidClientMetadata)
    if method == "private_key_jwt" and jwks is None and jwks_uri is None:
        raise InvalidClientMetadata("private_key_jwt needs jwks or jwks_uri")
    extra: dict[str, Any] = {}
    for field in URL_FIELDS:
        if data.get(field) is not None:
            extra[field] = check_uri(data[field], field, error=InvalidClientMetadata)
    for field in TEXT_FIELDS:
        if data.get(field) is not None:
            if not isinstance(data[field], str) or len(data[field]) > MAX_TEXT:
                raise InvalidClientMetadata(f"{field} must be a string of at most {MAX_TEXT} characters")
            extra[field] = data[field]
    if data.get("contacts") is not None:
        contacts = _string_list(data["contacts"], "contacts", limit=10)
        if any(len(c) > 320 for c in contacts):
            raise InvalidClientMetadata("contacts must be e-mail addresses")
        extra["contacts"] = contacts
    if data.get("post_logout_redirect_uris") is not None:
        uris = _string_list(data["post_logout_redirect_uris"], "post_logout_redirect_uris")
        extra["post_logout_redirect_uris"] = [
            check_uri(u, "post_logout_redirect_uri", error=InvalidClientMetadata) for u in uris
        ]
    if data.get("backchannel_logout_uri") is not None:
        # OpenID Back-Channel Logout 2.2: an absolute URL, may have a query, no fragment.
        extra["backchannel_logout_uri"] = check_uri(
            data["backchannel_logout_uri"], "backchannel_logout_uri", error=InvalidClientMetadata
        )
    session_required = data.get("backchannel_logout_session_required")
    if session_required is not None:
        if not isinstance(session_required, bool):
            raise InvalidClientMetadata("backchannel_logout_session_required must be a boolean")
        extra["backchannel_logout_session_required"] = session_required
    return ClientRequest(
        client_name=name.strip(),
        redirect_uris=redirect_uris,
        grant_types=grant_types,
        token_endpoint_auth_method=method,
        scope=scope,
        jwks=jwks,
        jwks_uri=jwks_uri,
        extra=extra,
    )


@dataclass(frozen=True)
class InitialAccessToken:
    id: str
    token: str
    uses: int
    expires_at: datetime


class Registrar:
    """``services.oauth`` + this = the RFC 7591/7592 endpoints' cores."""

    def __init__(self, server: OAuthServer):
        self._server = server
        self._settings = server.settings

    @property
    def policy(self) -> RegistrationPolicy:
        return self._settings.registration

    def client_uri(self, client_id: str) -> str:
        return f"{self._server.issuer}{REGISTRATION_PATH}/{client_id}"

    # --- initial access tokens (RFC 7591 section 3) ---

    async def create_initial_token(
        self, *, uses: int = 1, ttl_seconds: int = 86400, note: str | None = None
    ) -> InitialAccessToken:
        if uses < 1 or ttl_seconds < 60:
            raise ValidationFailed("an initial access token needs at least one use and a minute of life")
        token = new_secret(32)
        now = self._server.now()
        made = InitialAccessToken(new_id(), token, uses, now + timedelta(seconds=ttl_seconds))
        async with self._server.db.transaction() as conn:
            await conn.execute(
                insert(oauth_initial_access_tokens).values(
                    token_hash=sha256_hex(token),
                    id=made.id,
                    note=(note or "")[:512] or None,
                    uses_left=uses,
                    created_at=now,
                    expires_at=made.expires_at,
                )
            )
        return made

    async def _use_initial_token(self, token: str, *, conn: AsyncConnection) -> str:
        """Spend one use of the token (an atomic conditional update); its id, or ``invalid_token``."""
        if len(token) > 256:
            raise InvalidToken("the initial access token is not valid")
        table = oauth_initial_access_tokens
        token_hash = sha256_hex(token)
        now = self._server.now()
        result = await conn.execute(
            update(table)
            .where(table.c.token_hash == token_hash, table.c.uses_left > 0, table.c.expires_at > now)
            .values(uses_left=table.c.uses_left - 1)
        )
        if not result.rowcount:
            raise InvalidToken("the initial access token is not valid")
        found = (await conn.execute(select(table.c.id).where(table.c.token_hash == token_hash))).scalar_one()
        await conn.execute(delete(table).where(table.c.uses_left <= 0))
        return str(found)

    # --- RFC 7591 section 3: registration ---

    async def register(
        self,
        data: Any,
        *,
        bearer: str | None,
        ip: str | None,
        user_agent: str | None = None,
    ) -> dict[str, Any]:
        if self.policy == RegistrationPolicy.OFF:
            raise AccessDenied("dynamic client registration is turned off on this server")
        if self.policy == RegistrationPolicy.TOKEN and not bearer:
            raise InvalidToken(
                "an initial access token is required", headers={"WWW-Authenticate": 'Bearer realm="tessera"'}
            )
        decision = await self._server.services.rate_limiter.hit(
            f"oauth-register:{ip or 'unknown'}",
            limit=self._settings.registration_rate_limit,
            window_seconds=self._settings.registration_rate_window,
        )
        if not decision.allowed:
            raise RateLimited(decision, "too many registrations from this address; retry later")
        request = validate_metadata(data)
        made = self._build(request, source="dynamic")
        registration_token = new_secret(32)
        client = replace(made.client, registration_access_token_hash=sha256_hex(registration_token))
        store = self._server.client_store
        async with self._server.db.transaction() as conn:
            initial_id = None
            if self.policy == RegistrationPolicy.TOKEN:
                assert bearer is not None
                try:
                    initial_id = await self._use_initial_token(bearer, conn=conn)
                except InvalidToken as exc:
                    exc.headers = {"WWW-Authenticate": 'Bearer realm="tessera", error="invalid_token"'}
                    raise
            await store.insert(client, conn=conn)
            await self._server.audit(
                AuditEvent(
                    EventType.CLIENT_CREATED,
                    client_id=client.client_id,
                    ip=ip,
                    user_agent=user_agent,
                    details={
                        "source": "dynamic",
                        **({"initial_access_token": initial_id} if initial_id else {}),
                    },
                ),
                conn=conn,
            )
        return self._response(client, made.client_secret, registration_token)

    def _build(self, request: ClientRequest, *, source: str, client_id: str | None = None) -> Any:
        try:
            return self._server.build_client(
                client_name=request.client_name,
                redirect_uris=request.redirect_uris,
                grant_types=request.grant_types,
                is_public=request.token_endpoint_auth_method == "none",
                scope=request.scope,
                token_endpoint_auth_method=request.token_endpoint_auth_method,
                jwks=request.jwks,
                jwks_uri=request.jwks_uri,
                metadata=request.extra,
                source=source,
                client_id=client_id,
            )
        except ValidationFailed as exc:
            if "redirect" in exc.description.lower():
                raise InvalidRedirectUri(exc.description) from exc
            raise InvalidClientMetadata(exc.description) from exc

    def _response(self, client: Client, secret: str | None, registration_token: str | None) -> dict[str, Any]:
        """RFC 7591 3.2.1 / RFC 7592 3: the metadata as registered, with the credentials."""
        body = client.public_metadata()
        if secret is not None:
            body["client_secret"] = secret
        if client.client_secret_hash is not None or secret is not None:
            expires = client.client_secret_expires_at
            body["client_secret_expires_at"] = int(expires.timestamp()) if expires else 0
        if registration_token is not None:
            body["registration_access_token"] = registration_token
        body["registration_client_uri"] = self.client_uri(client.client_id)
        return body

    # --- RFC 7592: read, update, delete ---

    async def _authorized(self, client_id: str, bearer: str | None) -> Client:
        """The client, when ``bearer`` is its registration access token; else 401 (RFC 7592 2.1, 2.2, 2.3)."""
        fail = InvalidToken(
            "the registration access token is not valid for this client",
            headers={"WWW-Authenticate": 'Bearer realm="tessera", error="invalid_token"'},
        )
        if not bearer or len(bearer) > 256 or len(client_id) > 2048:
            raise fail
        client = await self._server.client_store.get(client_id)
        # A missing client is answered like a wrong token: RFC 7592 2 says 401 so ids cannot be probed.
        if (
            client is None
            or client.registration_access_token_hash is None
            or not constant_time_equal(sha256_hex(bearer), client.registration_access_token_hash)
        ):
            raise fail
        return client

    async def read(self, client_id: str, bearer: str | None) -> dict[str, Any]:
        client = await self._authorized(client_id, bearer)
        # RFC 7592 3: the registration access token is not repeated unless it was rotated.
        return self._response(client, None, None)

    async def update(
        self, client_id: str, bearer: str | None, data: Any, *, ip: str | None
    ) -> dict[str, Any]:
        current = await self._authorized(client_id, bearer)
        if not isinstance(data, dict):
            raise InvalidClientMetadata("the request body must be a JSON object")
        # RFC 7592 2.2: the body carries client_id (equal to the current one); a client_secret, if sent, must
        # be the current secret; the registration_* and *_issued_at fields must not be sent.
        if data.get("client_id") != client_id:
            raise InvalidClientMetadata("client_id must be the client's current client_id")
        for field in ("registration_access_token", "registration_client_uri", "client_id_issued_at"):
            if field in data:
                raise InvalidClientMetadata(f"{field} must not be sent in an update (RFC 7592 2.2)")
        sent_secret = data.get("client_secret")
        now = self._server.now()
        if sent_secret is not None and (
            not isinstance(sent_secret, str) or not current.secret_matches(sent_secret, now)
        ):
            raise InvalidClientMetadata("client_secret does not match the client's current secret")
        request = validate_metadata(data)
        made = self._build(request, source="dynamic", client_id=client_id)
        secret = None
        secret_hash = current.client_secret_hash
        if made.client.token_endpoint_auth_method in ("client_secret_basic", "client_secret_post"):
            if secret_hash is None:  # it had no secret before (a public client turning confidential)
                secret, secret_hash = made.client_secret, made.client.client_secret_hash
        else:
            secret_hash = None
        updated = replace(
            made.client,
            client_secret_hash=secret_hash,
            client_secret_expires_at=current.client_secret_expires_at if secret_hash else None,
            registration_access_token_hash=current.registration_access_token_hash,
            created_at=current.created_at,
            first_party=current.first_party,
            disabled=current.disabled,
        )
        async with self._server.db.transaction() as conn:
            updated = await self._server.client_store.update(updated, conn=conn)
            await self._server.audit(
                AuditEvent("client.updated", client_id=client_id, ip=ip, details={"source": "rfc7592"}),
                conn=conn,
            )
        self._server.clients.forget(client_id)
        return self._response(updated, secret, None)

    async def delete(self, client_id: str, bearer: str | None, *, ip: str | None) -> None:
        await self._authorized(client_id, bearer)
        async with self._server.db.transaction() as conn:
            await self._server.client_store.delete(client_id, conn=conn)
            await self._server.audit(
                AuditEvent("client.deleted", client_id=client_id, ip=ip, details={"source": "rfc7592"}),
                conn=conn,
            )
        self._server.clients.forget(client_id)


def registration_metadata(server: OAuthServer) -> dict[str, Any]:
    """Discovery fields for registration (RFC 8414 2)."""
    if server.settings.registration == RegistrationPolicy.OFF:
        return {}
    return {"registration_endpoint": f"{server.issuer}{REGISTRATION_PATH}"}


__all__ = [
    "REGISTRATION_PATH",
    "InvalidClientMetadata",
    "InvalidRedirectUri",
    "Registrar",
    "oauth_initial_access_tokens",
    "registration_metadata",
    "validate_metadata",
]
