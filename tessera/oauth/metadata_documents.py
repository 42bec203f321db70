"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document): an https URL as client_id.

The authorization server fetches the URL and uses the JSON document found there as the client's registered
metadata (section 4). The rules followed here:

- The client_id URL (section 3): https, a host, a path, no fragment, no userinfo, no ``.``/``..`` segments.
- The document (section 4.1): a JSON object whose ``client_id`` equals the URL exactly, with no
  ``client_secret``/``client_secret_expires_at`` and no shared-secret ``token_endpoint_auth_method``: such a
  client is public (``none``) or proves possession of a key (``private_key_jwt``). The rest is validated as
  RFC 7591 metadata (redirect URIs included), with the same errors as dynamic registration.
- Fetching it (section 6.6, SSRF): the host is resolved once, and every address it resolves to must be a
  public unicast address (no private, loopback, link-local, multicast, reserved, CGNAT or IPv4-mapped
  internal ones); the connection goes to the vetted address while the TLS server name and ``Host`` stay the
  URL's host, so a second DNS answer cannot swap in an internal address. No redirects, no proxies from the
  environment, 5 seconds in all and 5 KB at most (both settings).
- Caching (section 4.3): per the response's ``Cache-Control: max-age`` (or ``Expires``), clamped to between
  one minute and one day, ``no-store`` treated as the minimum; failed fetches are remembered briefly, so a
  slow or broken host cannot be made to cost a fetch per request. Bounded in entries.

The network part is behind ``DocumentFetcher``; tests pass one that serves fixtures from a loopback server
(``SafeHttp(allow_private=True, allow_http=True, resolve=...)``) so nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import json
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx

from tessera.core.errors import OAuthError
from tessera.oauth.clients import Client
from tessera.oauth.registration import InvalidClientMetadata, validate_metadata

if TYPE_CHECKING:
    from tessera.oauth.server import OAuthServer

MIN_CACHE_SECONDS = 60
MAX_CACHE_SECONDS = 86400
FAILURE_CACHE_SECONDS = 30
MAX_ENTRIES = 5000
MAX_URL_LENGTH = 2048

Resolver = Callable[[str, int], Awaitable[list[str]]]


class FetchRefused(OAuthError):
    """The URL or its document may not be used; becomes an error page or ``invalid_client``."""

    code = "invalid_client"
    status_code = 400


def is_metadata_document_url(client_id: str) -> bool:
    return client_id.startswith("https://")


def check_client_id_url(url: str) -> None:
    """Section 3 of the draft: what a client_id URL must look like."""
    if len(url) > MAX_URL_LENGTH or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        raise FetchRefused("the client_id URL is too long or holds spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:
        raise FetchRefused("the client_id is not a URL") from exc
    if parts.scheme != "https" or not parts.hostname:
        raise FetchRefused("a client_id URL must be https with a host")
    if "#" in url or parts.username is not None or parts.password is not None:
        raise FetchRefused("a client_id URL must have no fragment and no credentials")
    segments = parts.path.split("/")
    if not parts.path or parts.path == "/" or any(s in {".", ".."} for s in segments):
        raise FetchRefused("a client_id URL must have a path without . or .. segments")


def address_is_public(address: str) -> bool:
    """True for a globally routable unicast address; what a server-side fetch may connect to."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None and not address_is_public(str(mapped)):
            return False
        if ip.teredo is not None:
            return False
    # is_global alone lets multicast through, so each category is refused by name.
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


async def system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Fetched:
    status: int
    headers: httpx.Headers
    body: bytes


class DocumentFetcher(Protocol):
    async def get(self, url: str) -> Fetched: ...


class SafeHttp:
    """Outbound HTTP that cannot be pointed at the server's own network (used for documents and logout)."""

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        max_bytes: int = 5 * 1024,
        resolve: Resolver = system_resolve,
        allow_private: bool = False,
        allow_http: bool = False,
        verify: Any = True,
    ):
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._resolve = resolve
        self._allow_private = allow_private
        self._allow_http = allow_http
        # trust_env=False: no proxy from the environment may carry the request somewhere else.
        self._client = httpx.AsyncClient(trust_env=False, follow_redirects=False, verify=verify)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _vetted(self, url: str) -> tuple[str, dict[str, str], dict[str, Any]]:
        parts = urlsplit(url)
        if parts.scheme != "https" and not (self._allow_http and parts.scheme == "http"):
            raise FetchRefused("only https URLs are fetched")
        host = parts.hostname
        if not host:
            raise FetchRefused("the URL has no host")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            ipaddress.ip_address(host)
            addresses = [host]
        except ValueError:
            try:
                addresses = await self._resolve(host, port)
            except OSError as exc:
                raise FetchRefused("the client's host does not resolve") from exc
        if not addresses:
            raise FetchRefused("the client's host does not resolve")
        if not self._allow_private and not all(address_is_public(a) for a in addresses):
            # Every answer is checked, not just the first: a host that also names an internal address is
            # refused, so the connection below cannot be steered to it.
            raise FetchRefused("the client's host resolves to an address that is not public")
        address = addresses[0]
        netloc = f"[{address}]" if ":" in address else address
        if parts.port:
            netloc += f":{parts.port}"
        target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        host_header = host if not parts.port else f"{host}:{parts.port}"
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        return target, {"Host": host_header}, extensions

    async def request(
        self, method: str, url: str, *, data: dict[str, str] | None = None, accept: str = "application/json"
    ) -> Fetched:
        """One request, no redirects, at most ``max_bytes`` read and ``timeout`` seconds in all."""
        try:
            async with asyncio.timeout(self._timeout):
                target, headers, extensions = await self._vetted(url)
                headers = {**headers, "Accept": accept, "User-Agent": "tessera"}
                request = self._client.build_request(
                    method, target, headers=headers, data=data, extensions=extensions
                )
                response = await self._client.send(request, stream=True)
                try:
                    declared = response.headers.get("content-length")
                    if declared is not None and declared.isdigit() and int(declared) > self._max_bytes:
                        raise FetchRefused("the response is larger than allowed")
                    body = bytearray()
                    async for chunk in response.aiter_raw():
                        body.extend(chunk)
                        if len(body) > self._max_bytes:
                            raise FetchRefused("the response is larger than allowed")
                finally:
                    await response.aclose()
        except TimeoutError as exc:
            raise FetchRefused("the client's server took too long to answer") from exc
        except httpx.HTTPError as exc:
            raise FetchRefused("the client's server could not be reached") from exc
        return Fetched(response.status_code, response.headers, bytes(body))

    async def get(self, url: str) -> Fetched:
        return await self.request("GET", url)


def cache_seconds(headers: httpx.Headers, now: float) -> int:
    """How long to keep a document: HTTP caching (RFC 9111 5.2.2, 5.3), within our bounds."""
    control = [d.strip().lower() for d in headers.get("cache-control", "").split(",")]
    if "no-store" in control or "no-cache" in control:
        return MIN_CACHE_SECONDS
    for directive in control:
        name, _, value = directive.partition("=")
        if name == "max-age" and value.strip().isdigit():
            return max(MIN_CACHE_SECONDS, min(int(value), MAX_CACHE_SECONDS))
    expires = headers.get("expires")
    if expires:
        try:
            when = email.utils.parsedate_to_datetime(expires).timestamp()
        except (TypeError, ValueError):
            when = now
        return max(MIN_CACHE_SECONDS, min(int(when - now), MAX_CACHE_SECONDS))
    return 300


def client_from_document(url: str, document: Any) -> Client:
    """Section 4.1: the document as a Client (public or private_key_jwt), or ``FetchRefused``."""
    if not isinstance(document, dict):
        raise FetchRefused("the client metadata document is not a JSON object")
    if document.get("client_id") != url:
        raise FetchRefused("the document's client_id is not the URL it was fetched from")
    if "client_secret" in document or "client_secret_expires_at" in document:
        raise FetchRefused("a client metadata document must not hold a client secret")
    data = {k: v for k, v in document.items() if not k.startswith("tessera_")}
    # The draft: no shared secrets; without a method the client is public.
    data.setdefault("token_endpoint_auth_method", "none")
    try:
        request = validate_metadata(data, allow_secret_methods=False)
    except OAuthError as exc:
        raise FetchRefused(f"the client metadata document is not valid: {exc.description}") from exc
    if "client_credentials" in request.grant_types and request.token_endpoint_auth_method == "none":
        raise FetchRefused("client_credentials needs a client that authenticates")
    return Client(
        client_id=url,
        client_name=request.client_name,
        is_public=request.token_endpoint_auth_method == "none",
        token_endpoint_auth_method=request.token_endpoint_auth_method,
        redirect_uris=tuple(request.redirect_uris),
        grant_types=tuple(request.grant_types),
        response_types=("code",) if "authorization_code" in request.grant_types else (),
        scope=request.scope,
        jwks=request.jwks,
        jwks_uri=request.jwks_uri,
        metadata=request.extra,
        source="metadata_document",
    )


class MetadataDocuments:
    """Resolves URL client_ids to clients, with a bounded cache; plugged into ``ClientCache``."""

    def __init__(self, server: OAuthServer, fetcher: DocumentFetcher | None = None):
        settings = server.settings
        self.enabled = settings.client_id_metadata_document_supported
        self._own_fetcher = fetcher is None
        self.fetcher: DocumentFetcher = fetcher or SafeHttp(
            timeout=settings.metadata_document_timeout, max_bytes=settings.metadata_document_max_bytes
        )
        self._entries: dict[str, tuple[float, Client | None, str | None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # For the jwks_uri of self-registered clients (client_auth.py): same guard, JWK Set-sized limit.
        self.guarded_http = SafeHttp(timeout=5.0, max_bytes=64 * 1024)

    async def aclose(self) -> None:
        if self._own_fetcher and isinstance(self.fetcher, SafeHttp):
            await self.fetcher.aclose()
        await self.guarded_http.aclose()

    async def guarded_get(self, url: str) -> httpx.Response:
        """GET through the SSRF guard, as an ``httpx.Response``; a refusal is an ``httpx.RequestError``."""
        try:
            fetched = await self.guarded_http.get(url)
        except FetchRefused as exc:
            raise httpx.RequestError(exc.description) from exc
        return httpx.Response(fetched.status, headers=fetched.headers, content=fetched.body)

    def forget(self, url: str | None = None) -> None:
        if url is None:
            self._entries.clear()
        else:
            self._entries.pop(url, None)

    async def resolve(self, url: str) -> Client | None:
        """The client the document describes, or None when it cannot be used (unknown client)."""
        client, _reason = await self.lookup(url)
        return client

    async def lookup(self, url: str) -> tuple[Client | None, str | None]:
        """(client, None) or (None, why it was refused)."""
        if not self.enabled or not is_metadata_document_url(url):
            return None, "client id metadata documents are not enabled"
        now = time.monotonic()
        hit = self._entries.get(url)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2]
        # One fetch per URL at a time: a burst of requests for one client waits for the same answer.
        lock = self._locks.setdefault(url, asyncio.Lock())
        async with lock:
            hit = self._entries.get(url)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1], hit[2]
            client, reason, ttl = await self._fetch(url)
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[url] = (time.monotonic() + ttl, client, reason)
        self._locks.pop(url, None)
        return client, reason

    async def _fetch(self, url: str) -> tuple[Client | None, str | None, int]:
        try:
            check_client_id_url(url)
            fetched = await self.fetcher.get(url)
            if fetched.status != 200:
                raise FetchRefused(f"the client metadata document answered HTTP {fetched.status}")
            media = fetched.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media and media != "application/json" and not media.endswith("+json"):
                raise FetchRefused("the client metadata document is not JSON")
            try:
                document = json.loads(fetched.body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise FetchRefused("the client metadata document is not JSON") from exc
            client = client_from_document(url, document)
        except (FetchRefused, InvalidClientMetadata) as exc:
            return None, exc.description, FAILURE_CACHE_SECONDS
        return client, None, cache_seconds(fetched.headers, time.time())


__all__ = [
    "DocumentFetcher",
    "FetchRefused",
    "Fetched",
    "MetadataDocuments",
    "SafeHttp",
    "address_is_public",
    "check_client_id_url",
    "client_from_document",
    "is_metadata_document_url",
]
