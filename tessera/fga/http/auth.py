"""Who may call ``/fga``: Tessera access tokens (RFC 9068 JWTs) for the API ``<issuer>/fga``.

Every route declares the scope it needs: ``fga:read`` (Check, BatchCheck, ListObjects, ListUsers, Expand,
Read, ReadChanges, reading stores, models and assertions), ``fga:write`` (Write, WriteAssertions) or
``fga:admin`` (creating and deleting stores, writing models). ``fga:admin`` grants the other two as well,
so one admin client can drive the ``fga`` CLI end to end.

Tokens are checked by the authorization server's own verifier (``OAuthServer.check_access_token``:
signature by a published key, ``typ: at+jwt`` per RFC 9068 section 4, issuer, expiry, revocation by jti and
by grant, and whether the token's client and user still exist and are enabled, the database's answers read
in one statement), then the audience and the route's scope here. Failures answer OpenFGA's own codes
(openfga/api ``AuthErrorCode``) in OpenFGA's body shape, plus an RFC 6750 section 3 ``WWW-Authenticate``
header: no token is 401 ``bearer_token_missing``; a token that is not ours, expired, revoked or for another
audience is 401 ``auth_failed_invalid_bearer_token`` / ``auth_failed_invalid_audience`` /
``auth_failed_invalid_issuer``; a valid token without the scope is 403 ``forbidden``.

``TESSERA_FGA_AUTH=off`` turns this off for local experiments; :func:`check_opt_out` refuses it unless the
server listens on loopback only, so an open FGA API is never reachable from another machine.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import Request

from tessera.core.errors import TesseraError

READ = "fga:read"
WRITE = "fga:write"
ADMIN = "fga:admin"
SCOPES = {
    READ: "Check, list and read relationships, models and stores",
    WRITE: "Write and delete relationship tuples and assertions",
    ADMIN: "Create and delete stores, write authorization models",
}


class FGAAuthError(TesseraError):
    """An OpenFGA authentication or authorization failure (``{"code", "message"}`` body)."""

    def __init__(self, code: str, message: str, status_code: int, *, scope: str | None = None):
        super().__init__(message, code=code, status_code=status_code)
        self.message = message
        error = "insufficient_scope" if status_code == 403 else "invalid_token"
        challenge = 'Bearer realm="fga"'
        if code != "bearer_token_missing":
            challenge += f', error="{error}"'
        if scope:
            challenge += f', scope="{scope}"'
        self.headers = {"WWW-Authenticate": challenge}

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class TokenVerifier(Protocol):
    async def check_access_token(self, token: str) -> tuple[dict[str, Any], bool]:
        """The claims of a Tessera access token (RFC 9068 ``at+jwt``) that is well signed by a published key,
        unexpired, from this issuer and not revoked, and whether its client and user still exist and are
        enabled; raises a TesseraError for a token that is not valid."""
        ...


@dataclass(frozen=True)
class Principal:
    """The caller: the token's subject and client, or ``anonymous`` when authentication is off."""

    subject: str
    client_id: str | None
    scopes: frozenset[str]


ANONYMOUS = Principal("anonymous", None, frozenset(SCOPES))


def is_loopback(host: str) -> bool:
    if host in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_opt_out(*, auth_enabled: bool, host: str) -> None:
    """Refuse ``TESSERA_FGA_AUTH=off`` on a server that listens beyond loopback."""
    if not auth_enabled and not is_loopback(host):
        raise TesseraError(
            f"TESSERA_FGA_AUTH=off is only allowed when the server listens on loopback; host is {host!r}",
            code="fga_auth_off_refused",
        )


def _unverified_issuer(token: str) -> str | None:
    """The ``iss`` of a compact JWT without checking anything (to choose an error code, never to trust)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    issuer = payload.get("iss") if isinstance(payload, dict) else None
    return issuer if isinstance(issuer, str) else None


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header or scheme.lower() != "bearer" or not token.strip():
        raise FGAAuthError("bearer_token_missing", "missing bearer token", 401)
    return token.strip()


class FGAAuthenticator:
    """Builds the per-route dependency ``Depends(auth.require(READ))``."""

    def __init__(
        self,
        *,
        enabled: bool,
        issuer: str,
        verifier: Callable[[], TokenVerifier],
        now: Callable[[], float],
        leeway: int = 30,
    ):
        self.enabled = enabled
        self.issuer = issuer
        self.audience = f"{issuer}/fga"
        self._verifier = verifier
        self._now = now
        self._leeway = leeway

    async def authenticate(self, request: Request, scope: str) -> Principal:
        if not self.enabled:
            return ANONYMOUS
        token = _bearer(request)
        try:
            claims, parties_active = await self._verifier().check_access_token(token)
        except TesseraError as exc:
            # OpenFGA names a foreign issuer separately; the claim is only read to pick the code.
            if _unverified_issuer(token) not in (None, self.issuer):
                raise FGAAuthError("auth_failed_invalid_issuer", "invalid issuer", 401) from exc
            raise FGAAuthError("auth_failed_invalid_bearer_token", "invalid bearer token", 401) from exc
        if claims.get("iss") != self.issuer:
            raise FGAAuthError("auth_failed_invalid_issuer", "invalid issuer", 401)
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if self.audience not in audiences:
            raise FGAAuthError("auth_failed_invalid_audience", "invalid audience", 401)
        now = self._now()
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not isinstance(exp, int | float) or exp + self._leeway < now:
            raise FGAAuthError("auth_failed_invalid_bearer_token", "invalid bearer token", 401)
        if isinstance(nbf, int | float) and nbf - self._leeway > now:
            raise FGAAuthError("auth_failed_invalid_bearer_token", "invalid bearer token", 401)
        granted = frozenset(str(claims.get("scope", "")).split())
        if scope not in granted and ADMIN not in granted:
            raise FGAAuthError(
                "forbidden", "the principal is not authorized to perform the action", 403, scope=scope
            )
        # A deleted or disabled client's JWT (or a disabled user's) is still well signed: refused last, so
        # OpenFGA's audience, issuer and scope codes keep their precedence.
        if not parties_active:
            raise FGAAuthError("auth_failed_invalid_bearer_token", "invalid bearer token", 401)
        return Principal(str(claims.get("sub", "")), claims.get("client_id"), granted)

    def require(self, scope: str) -> Callable[[Request], Awaitable[Principal]]:
        async def dependency(request: Request) -> Principal:
            return await self.authenticate(request, scope)

        return dependency
