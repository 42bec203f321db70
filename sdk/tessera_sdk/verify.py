"""Verify Tessera's JWT access tokens (RFC 9068) in a resource server: an API or an MCP server."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from tessera_sdk.errors import TokenVerificationError

ALLOWED_ALGORITHMS = ["ES256", "EdDSA"]


@dataclass(frozen=True)
class AccessToken:
    subject: str
    client_id: str
    scopes: frozenset[str]
    expires_at: int
    claims: dict[str, Any]


class TokenVerifier:
    """Checks signature (keys from the issuer's JWKS, refreshed on an unknown ``kid``), ``typ: at+jwt``,
    ``iss``, ``aud`` and expiry, as RFC 9068 section 4 asks of a resource server."""

    def __init__(
        self, issuer: str, audience: str, *, http: httpx.AsyncClient | None = None, leeway: int = 30
    ):
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.leeway = leeway
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=10.0)
        self._keys: KeySet | None = None
        self._fetched_at = 0.0

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def _key_set(self, *, refresh: bool = False) -> KeySet:
        # Refetch on demand, but at most every 10 s, so a flood of bad kids cannot hammer the issuer.
        if self._keys is None or (refresh and time.time() - self._fetched_at > 10):
            metadata = (await self._http.get(f"{self.issuer}/.well-known/oauth-authorization-server")).json()
            jwks = (await self._http.get(metadata["jwks_uri"])).json()
            self._keys = KeySet.import_key_set(jwks)
            self._fetched_at = time.time()
        return self._keys

    async def verify(self, token: str) -> AccessToken:
        keys = await self._key_set()
        try:
            try:
                decoded = jwt.decode(token, keys, algorithms=ALLOWED_ALGORITHMS)
            except (ValueError, JoseError):
                decoded = jwt.decode(token, await self._key_set(refresh=True), algorithms=ALLOWED_ALGORITHMS)
        except (ValueError, JoseError) as exc:
            raise TokenVerificationError(f"signature check failed: {exc}") from exc
        if decoded.header.get("typ", "").lower() not in {"at+jwt", "application/at+jwt"}:
            raise TokenVerificationError("not an access token (typ is not at+jwt)")
        claims = decoded.claims
        now = time.time()
        audiences = claims.get("aud")
        audiences = [audiences] if isinstance(audiences, str) else list(audiences or [])
        if claims.get("iss") != self.issuer:
            raise TokenVerificationError("wrong issuer")
        if self.audience not in audiences:
            raise TokenVerificationError("token is not for this audience")
        if not isinstance(claims.get("exp"), int) or claims["exp"] + self.leeway < now:
            raise TokenVerificationError("token expired")
        return AccessToken(
            subject=str(claims.get("sub", "")),
            client_id=str(claims.get("client_id", "")),
            scopes=frozenset(str(claims.get("scope", "")).split()),
            expires_at=int(claims["exp"]),
            claims=dict(claims),
        )
