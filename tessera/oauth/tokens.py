"""Token formats, chosen in one place.

- Access tokens are JWTs (RFC 9068): header ``typ: at+jwt``; claims ``iss exp aud sub client_id iat jti
  scope``, plus ``auth_time`` (and ``acr``/``amr``) when a user signed in, and ``gid`` (the grant) when they
  come from a user's authorization, so revoking the grant revokes them. ``aud`` is the requested API
  (RFC 8707) and, when ``openid`` was granted, also ``<issuer>/userinfo``; a token for no API at all is
  audienced to ``<issuer>/userinfo`` only (it can read userinfo and nothing else), as Auth0 does.
- ID tokens follow OIDC Core 2 and 3.1.3.6 (``at_hash``, ``nonce``, ``auth_time``, ``amr``, ``acr``, ``sid``).
- Refresh tokens are opaque random strings (256 bits) stored as SHA-256.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tessera.core.clock import Clock
from tessera.core.errors import InvalidToken
from tessera.core.ids import new_secret, new_token_id, sha256_hex
from tessera.keys.keyring import KeyError_, KeyRing, half_hash
from tessera.oauth.scopes import SCOPE_CLAIMS
from tessera.oauth.stores import RevocationStore
from tessera.settings import Settings

ACCESS_TOKEN_TYP = "at+jwt"


@dataclass
class TokenResponse:
    """RFC 6749 5.1 successful response."""

    access_token: str
    expires_in: int
    token_type: str = "Bearer"
    scope: str | None = None
    refresh_token: str | None = None
    id_token: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
        }
        if self.scope:
            body["scope"] = self.scope
        if self.refresh_token:
            body["refresh_token"] = self.refresh_token
        if self.id_token:
            body["id_token"] = self.id_token
        body.update(self.extra)
        return body


@dataclass(frozen=True)
class IssuedAccessToken:
    token: str
    jti: str
    expires_at: int
    claims: dict[str, Any]


def user_claims(user: Any, scopes: set[str] | frozenset[str] | list[str]) -> dict[str, Any]:
    """The standard claims the granted scopes allow (OIDC Core 5.4)."""
    allowed = {claim for scope in scopes for claim in SCOPE_CLAIMS.get(scope, ())}
    values = {
        "email": getattr(user, "email", None),
        "email_verified": getattr(user, "email_verified", None),
        "name": getattr(user, "name", None),
    }
    created = getattr(user, "created_at", None)
    if isinstance(created, datetime):
        values["updated_at"] = int(created.timestamp())
    return {name: value for name, value in values.items() if name in allowed and value is not None}


class TokenIssuer:
    def __init__(self, keys: KeyRing, revocations: RevocationStore, clock: Clock, settings: Settings):
        self._keys = keys
        self._revocations = revocations
        self._clock = clock
        self._settings = settings
        self.issuer = settings.issuer
        self.userinfo_audience = f"{settings.issuer}/userinfo"

    async def access_token(
        self,
        *,
        client_id: str,
        subject: str,
        audience: list[str],
        scope: str,
        ttl: int | None = None,
        grant_id: str | None = None,
        auth_time: datetime | None = None,
        amr: list[str] | None = None,
        acr: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> IssuedAccessToken:
        now = int(self._clock.now())
        lifetime = ttl or self._settings.access_token_ttl
        jti = new_token_id()
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience[0] if len(audience) == 1 else audience,
            "client_id": client_id,
            "iat": now,
            "exp": now + lifetime,
            "jti": jti,
        }
        if scope:
            claims["scope"] = scope
        if auth_time is not None:
            claims["auth_time"] = int(auth_time.timestamp())
        if amr:
            claims["amr"] = amr
        if acr:
            claims["acr"] = acr
        if grant_id is not None:
            claims["gid"] = grant_id
        if extra:
            claims.update(extra)
        token, _key = await self._keys.sign(claims, typ=ACCESS_TOKEN_TYP)
        return IssuedAccessToken(token, jti, claims["exp"], claims)

    async def id_token(
        self,
        *,
        client_id: str,
        user: Any,
        scopes: set[str] | frozenset[str] | list[str],
        auth_time: datetime | None,
        nonce: str | None,
        session_id: str | None,
        amr: list[str] | None,
        acr: str | None,
        access_token: str | None,
    ) -> str:
        now = int(self._clock.now())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user.id,
            "aud": client_id,
            "iat": now,
            "exp": now + self._settings.id_token_ttl,
        }
        if auth_time is not None:
            claims["auth_time"] = int(auth_time.timestamp())
        if nonce:
            claims["nonce"] = nonce
        if session_id:
            claims["sid"] = session_id
        if amr:
            claims["amr"] = amr
        if acr:
            claims["acr"] = acr
        claims.update(user_claims(user, scopes))
        key = await self._keys.active()
        if access_token is not None:
            claims["at_hash"] = half_hash(access_token, key.alg)
        token, _ = await self._keys.sign(claims, typ="JWT")
        return token

    @staticmethod
    def new_refresh_token() -> tuple[str, str]:
        token = new_secret(32)
        return token, sha256_hex(token)

    async def verify_access_token(self, token: str, *, check_revocation: bool = True) -> dict[str, Any]:
        """A Tessera access token that is well signed, unexpired and not revoked; else ``invalid_token``."""
        if len(token) > 8192:
            raise InvalidToken("the access token is not valid")
        try:
            _header, claims = await self._keys.verify(token, typ=ACCESS_TOKEN_TYP)
        except KeyError_ as exc:
            raise InvalidToken("the access token is not valid") from exc
        now = self._clock.now()
        exp = claims.get("exp")
        if claims.get("iss") != self.issuer or not isinstance(exp, int | float) or exp <= now:
            raise InvalidToken("the access token is expired or not from this issuer")
        if not isinstance(claims.get("jti"), str) or not isinstance(claims.get("client_id"), str):
            raise InvalidToken("the access token is not valid")
        if check_revocation and await self.is_revoked(claims):
            raise InvalidToken("the access token was revoked")
        return claims

    @staticmethod
    def revocation_keys(claims: Mapping[str, Any]) -> list[str]:
        """The revocation records that would revoke a verified access token: its jti's and its grant's."""
        keys = [f"jti:{claims['jti']}"]
        if isinstance(claims.get("gid"), str):
            keys.append(f"grant:{claims['gid']}")
        return keys

    async def is_revoked(self, claims: dict[str, Any]) -> bool:
        return await self._revocations.any_revoked(self.revocation_keys(claims))

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.now(), UTC)
