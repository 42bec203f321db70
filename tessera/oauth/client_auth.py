"""Client authentication at the token, introspection and revocation endpoints.

- ``client_secret_basic`` / ``client_secret_post`` (RFC 6749 2.3.1): the secret is compared as a SHA-256 hash
  in constant time. A client registered for either may use either, because Auth0's SDKs post the secret in
  the body whatever the registration says.
- ``private_key_jwt`` (RFC 7523 2.2 and 3, OIDC Core 9): a JWT signed with a key from the client's ``jwks``
  or ``jwks_uri``; ``iss`` = ``sub`` = client_id, ``aud`` the endpoint or the issuer, ``exp`` soon, and a
  ``jti`` that is accepted once (kept in the database until it expires, so every process agrees).
- ``none`` for public clients (RFC 6749 2.1): only a client_id; they are limited to what PKCE protects.

Only one method per request (RFC 6749 2.3). Failures are ``invalid_client`` with no hint about which part
was wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from tessera.core.clock import Clock
from tessera.core.errors import InvalidClient, InvalidRequest
from tessera.oauth.clients import Client, ClientCache
from tessera.oauth.params import Params
from tessera.oauth.stores import JtiStore

JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Asymmetric algorithms only: no "none", and no HMAC (client_secret_jwt is not offered).
ASSERTION_ALGS = (
    "ES256",
    "ES384",
    "ES512",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "EdDSA",
    "Ed25519",
)
MAX_ASSERTION_LIFETIME = 600  # seconds from now to exp; bounds how long jtis are kept
LEEWAY = 30  # clock skew, seconds
MAX_JWKS_BYTES = 64 * 1024


@dataclass(frozen=True)
class AuthenticatedClient:
    client: Client
    method: str


@dataclass(frozen=True)
class _Presented:
    method: str
    client_id: str | None
    secret: str | None = None
    assertion: str | None = None
    via_header: bool = False


def _challenge_headers(via_header: bool) -> dict[str, str]:
    # RFC 6749 5.2: a client that used the Authorization header gets a WWW-Authenticate challenge back.
    return {"WWW-Authenticate": 'Basic realm="tessera"'} if via_header else {}


def _form_decoded(value: str) -> str:
    return unquote_plus(value) if "%" in value or "+" in value else value


def _presented(params: Params, authorization: str | None) -> _Presented:
    basic = None
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise InvalidClient("malformed Basic credentials", headers=_challenge_headers(True)) from exc
            user, sep, password = decoded.partition(":")
            if not sep:
                raise InvalidClient("malformed Basic credentials", headers=_challenge_headers(True))
            # RFC 6749 2.3.1: both parts are form-urlencoded before Basic encoding (most need no decoding).
            basic = (_form_decoded(user), _form_decoded(password))
    body_id = params.get("client_id")
    body_secret = params.get("client_secret")
    assertion = params.get("client_assertion")
    assertion_type = params.get("client_assertion_type")
    used = sum(x is not None for x in (basic, body_secret, assertion))
    if used > 1:
        raise InvalidRequest("use exactly one client authentication method (RFC 6749 2.3)")
    if basic is not None:
        if body_id is not None and body_id != basic[0]:
            raise InvalidClient("client_id does not match the credentials", headers=_challenge_headers(True))
        return _Presented("client_secret_basic", basic[0], secret=basic[1], via_header=True)
    if body_secret is not None:
        return _Presented("client_secret_post", body_id, secret=body_secret)
    if assertion is not None:
        if assertion_type != JWT_BEARER_ASSERTION:
            raise InvalidClient("unsupported client_assertion_type")
        return _Presented("private_key_jwt", body_id, assertion=assertion)
    return _Presented("none", body_id)


class ClientAuthenticator:
    def __init__(
        self,
        clients: ClientCache,
        jtis: JtiStore,
        clock: Clock,
        http: httpx.AsyncClient,
        *,
        issuer: str,
        jwks_uri_ttl: int,
    ):
        self._clients = clients
        self._jtis = jtis
        self._clock = clock
        self._http = http
        self._issuer = issuer
        self._jwks_ttl = jwks_uri_ttl
        self._jwks_cache: dict[str, tuple[float, KeySet]] = {}
        self._jwks_forced: dict[str, float] = {}
        # Set by the server: fetches that may not reach internal addresses (metadata_documents.SafeHttp).
        self.guarded_get: Callable[[str], Awaitable[httpx.Response]] | None = None

    async def authenticate(
        self, params: Params, authorization: str | None, *, endpoint: str, require_confidential: bool = False
    ) -> AuthenticatedClient:
        presented = _presented(params, authorization)
        if presented.method == "private_key_jwt":
            return await self._private_key_jwt(presented, endpoint, self._failure(presented))
        if not presented.client_id:
            raise InvalidClient("client authentication is required", headers=_challenge_headers(False))
        client = await self._clients.get(presented.client_id)
        if client is None or client.disabled:
            raise self._failure(presented)
        if presented.method in ("client_secret_basic", "client_secret_post"):
            if client.token_endpoint_auth_method not in ("client_secret_basic", "client_secret_post"):
                raise self._failure(presented)
            now = datetime.fromtimestamp(self._clock.now(), UTC)
            if presented.secret is None or not client.secret_matches(presented.secret, now):
                raise self._failure(presented)
            return AuthenticatedClient(client, presented.method)
        # "none": only public clients may present a bare client_id.
        if client.token_endpoint_auth_method != "none" or require_confidential:
            raise self._failure(presented)
        return AuthenticatedClient(client, "none")

    @staticmethod
    def _failure(presented: _Presented) -> InvalidClient:
        # One answer for every way authentication can fail (no hint which part was wrong), made only when
        # needed: the success path builds no exception.
        return InvalidClient("client authentication failed", headers=_challenge_headers(presented.via_header))

    async def _private_key_jwt(
        self, presented: _Presented, endpoint: str, fail: InvalidClient
    ) -> AuthenticatedClient:
        assertion = presented.assertion or ""
        try:
            compact = extract_compact(assertion.encode("ascii"))
            header = compact.headers()
            unverified = json.loads(compact.payload)
        except (JoseError, ValueError, UnicodeError) as exc:
            raise fail from exc
        if not isinstance(unverified, dict) or header.get("alg") not in ASSERTION_ALGS:
            raise fail
        client_id = unverified.get("iss")
        if not isinstance(client_id, str) or (presented.client_id and presented.client_id != client_id):
            raise fail
        client = await self._clients.get(client_id)
        if client is None or client.disabled or client.token_endpoint_auth_method != "private_key_jwt":
            raise fail
        claims = await self._verify_signature(client, assertion, str(header["alg"]), header.get("kid"), fail)
        now = self._clock.now()
        audiences = claims.get("aud")
        audience_list = [audiences] if isinstance(audiences, str) else audiences
        accepted = {self._issuer, endpoint, f"{self._issuer}/oauth/token"}
        accepted.add(f"{self._issuer}/")  # auth0-python's assertions name the tenant as https://<domain>/
        exp, jti = claims.get("exp"), claims.get("jti")
        if (
            claims.get("sub") != client_id
            or not isinstance(audience_list, list)
            or not accepted.intersection(a for a in audience_list if isinstance(a, str))
            or not isinstance(exp, int | float)
            or exp <= now - LEEWAY
            or exp > now + MAX_ASSERTION_LIFETIME
            or not isinstance(jti, str)
            or not 0 < len(jti) <= 256
            or (isinstance(claims.get("nbf"), int | float) and claims["nbf"] > now + LEEWAY)
            or (isinstance(claims.get("iat"), int | float) and claims["iat"] > now + LEEWAY)
        ):
            raise fail
        fresh = await self._jtis.use(
            client_id,
            jti,
            datetime.fromtimestamp(exp + LEEWAY, UTC),
            datetime.fromtimestamp(now, UTC),
        )
        if not fresh:
            raise InvalidClient("the client assertion was already used")
        return AuthenticatedClient(client, "private_key_jwt")

    async def _verify_signature(
        self, client: Client, assertion: str, alg: str, kid: Any, fail: InvalidClient
    ) -> dict[str, Any]:
        for refresh in (False, True):
            keys = await self._client_keys(client, refresh=refresh)
            if keys is None:
                raise fail
            if kid is not None and not any(k.kid == kid for k in keys.keys):
                continue  # maybe the client rotated: fetch its jwks_uri again
            try:
                token = jwt.decode(assertion, keys, algorithms=[alg])
            except (JoseError, ValueError) as exc:
                raise fail from exc
            return dict(token.claims)
        raise fail

    async def _client_keys(self, client: Client, *, refresh: bool) -> KeySet | None:
        if client.jwks is not None:
            if refresh:
                return None
            try:
                return KeySet.import_key_set(client.jwks)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError):
                return None
        if not client.jwks_uri:
            return None
        cached = self._jwks_cache.get(client.jwks_uri)
        now = time.monotonic()
        if refresh:
            # An unknown kid: the client may have rotated. Refetch, but at most once every 10 seconds per
            # URI, so assertions with made-up kids cannot turn the server into a request flood.
            if now - self._jwks_forced.get(client.jwks_uri, float("-inf")) < 10:
                return None
            if len(self._jwks_forced) > 1000:
                self._jwks_forced.clear()
            self._jwks_forced[client.jwks_uri] = now
        elif cached is not None and now - cached[0] < self._jwks_ttl:
            return cached[1]
        try:
            if self.guarded_get is not None and client.source in ("dynamic", "metadata_document"):
                # A self-registered client's jwks_uri goes through the SSRF guard (metadata_documents.py).
                response = await self.guarded_get(client.jwks_uri)
            else:
                response = await self._http.get(client.jwks_uri, timeout=5.0, follow_redirects=False)
            if response.status_code != 200 or len(response.content) > MAX_JWKS_BYTES:
                return cached[1] if cached and not refresh else None
            keys = KeySet.import_key_set(response.json())
        except (httpx.HTTPError, JoseError, ValueError, TypeError):
            return cached[1] if cached and not refresh else None
        if len(self._jwks_cache) > 1000:
            self._jwks_cache.clear()
        self._jwks_cache[client.jwks_uri] = (now, keys)
        return keys
