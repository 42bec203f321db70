"""An async client for a Tessera server: discovery, client credentials with caching, introspection."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx

from tessera_sdk.errors import OAuthResponseError, TesseraSDKError


@dataclass(frozen=True)
class Token:
    access_token: str
    token_type: str
    expires_at: float
    scope: str | None = None
    refresh_token: str | None = None
    raw: dict[str, Any] | None = None

    def expires_within(self, seconds: float) -> bool:
        return time.time() + seconds >= self.expires_at


class TesseraClient:
    """``async with TesseraClient(issuer, client_id, client_secret) as tessera: ...``

    Tokens from :meth:`client_credentials` are cached per (audience, scope) and renewed 30 seconds before
    they expire; concurrent callers share one request.
    """

    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str | None = None,
        *,
        http: httpx.AsyncClient | None = None,
        verify: Any = True,
    ):
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=10.0, verify=verify)
        self._metadata: dict[str, Any] | None = None
        self._cache: dict[tuple[str | None, str | None], Token] = {}
        self._locks: dict[tuple[str | None, str | None], asyncio.Lock] = {}

    async def __aenter__(self) -> TesseraClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def metadata(self) -> dict[str, Any]:
        """The server's RFC 8414 metadata, fetched once."""
        if self._metadata is None:
            response = await self._http.get(f"{self.issuer}/.well-known/oauth-authorization-server")
            response.raise_for_status()
            document = response.json()
            # RFC 8414 section 3.3: the issuer in the document must be the one we asked.
            if document.get("issuer") != self.issuer:
                raise TesseraSDKError(f"metadata issuer {document.get('issuer')!r} is not {self.issuer!r}")
            self._metadata = document
        return self._metadata

    def _auth(self) -> httpx.BasicAuth | None:
        if self._client_secret is None:
            return None
        return httpx.BasicAuth(self.client_id, self._client_secret)

    async def _post_form(self, endpoint_name: str, data: dict[str, str]) -> dict[str, Any]:
        endpoint = (await self.metadata())[endpoint_name]
        if self._client_secret is None:
            data = {**data, "client_id": self.client_id}
        response = await self._http.post(endpoint, data=data, auth=self._auth() or httpx.USE_CLIENT_DEFAULT)
        try:
            body = response.json()
        except ValueError as exc:
            raise TesseraSDKError(f"{endpoint} answered {response.status_code} without JSON") from exc
        if response.status_code >= 400:
            raise OAuthResponseError(
                response.status_code, body.get("error", "unknown"), body.get("error_description")
            )
        return dict(body)

    async def client_credentials(self, *, audience: str | None = None, scope: str | None = None) -> Token:
        key = (audience, scope)
        cached = self._cache.get(key)
        if cached and not cached.expires_within(30):
            return cached
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._cache.get(key)
            if cached and not cached.expires_within(30):
                return cached
            data = {"grant_type": "client_credentials"}
            if audience:
                data["resource"] = audience  # RFC 8707
            if scope:
                data["scope"] = scope
            body = await self._post_form("token_endpoint", data)
            token = Token(
                access_token=body["access_token"],
                token_type=body.get("token_type", "Bearer"),
                expires_at=time.time() + float(body.get("expires_in", 60)),
                scope=body.get("scope"),
                refresh_token=body.get("refresh_token"),
                raw=body,
            )
            self._cache[key] = token
            return token

    async def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662 introspection, authenticated as this client."""
        return await self._post_form("introspection_endpoint", {"token": token})
