"""The MCP Python SDK's ``OAuthClientProvider`` against Tessera: from a protected MCP server's 401, through
RFC 9728 and RFC 8414 discovery, dynamic registration (or a Client ID Metadata Document), code + PKCE +
``resource``, to a tool call with a token whose ``aud`` is the MCP server. Tessera and the MCP server
(MCPServer, ``mcp.server.auth`` verification with ``tessera_sdk.TokenVerifier``) each run on a real
loopback port."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import httpx2
from joserfc.jws import extract_compact
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken as McpAccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from tessera_sdk.errors import TokenVerificationError
from tessera_sdk.verify import TokenVerifier

from tessera.services import Services
from tessera.settings import Settings
from tessera.storage.migrate import upgrade
from tessera.web.app import create_app
from tests.oauth.extras.support import LoopbackFetcher, Route, document_server
from tests.support.live import LiveServer, free_port

PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"
SCOPE = "mcp:tools"
CLIENT_DOC_URL = "https://agent.test/oauth/mcp-client.json"


class MemoryStorage:
    """The SDK's TokenStorage, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


def _inputs(page: str) -> list[tuple[str, str]]:
    pairs = []
    for tag in re.findall(r"<input[^>]*>", page):
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            pairs.append((html.unescape(name.group(1)), html.unescape(value.group(1)) if value else ""))
    return pairs


@dataclass
class UserAgent:
    """What a person does in a browser: follow redirects on Tessera, sign in, allow; stop at the callback."""

    base: str
    callback_prefix: str
    result: AuthorizationCodeResult | None = None
    visited: list[str] = field(default_factory=list)

    async def redirect_handler(self, url: str) -> None:
        self.visited.append(url)
        async with httpx.AsyncClient(base_url=self.base, follow_redirects=False) as http:
            response = await http.get(url)
            for _ in range(10):
                if response.status_code in (302, 303):
                    location = urljoin(str(response.url), response.headers["location"])
                    if location.startswith(self.callback_prefix):
                        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
                        assert "code" in query, query
                        self.result = AuthorizationCodeResult(
                            code=query["code"], state=query.get("state"), iss=query.get("iss")
                        )
                        return
                    response = await http.get(location)
                elif 'autocomplete="current-password"' in response.text:
                    fields = dict(_inputs(response.text))
                    fields.update(email=EMAIL, password=PASSWORD)
                    response = await http.post("/login", data=fields)
                elif 'name="decision"' in response.text:
                    pairs = [p for p in _inputs(response.text) if p[0] != "decision"] + [
                        ("decision", "allow")
                    ]
                    response = await http.post(
                        "/authorize/decision",
                        content=urlencode(pairs),
                        headers={"content-type": "application/x-www-form-urlencoded"},
                    )
                else:
                    raise AssertionError(f"unexpected page {response.status_code}: {response.text[:400]}")
        raise AssertionError("too many steps")

    async def callback_handler(self) -> AuthorizationCodeResult:
        assert self.result is not None
        return self.result


class TesseraTokenVerifier:
    """``mcp.server.auth``'s TokenVerifier on top of ``tessera_sdk.TokenVerifier`` (RFC 9068 checks)."""

    def __init__(self, issuer: str, resource: str):
        self.resource = resource
        self._verifier = TokenVerifier(issuer, resource)

    async def verify_token(self, token: str) -> McpAccessToken | None:
        try:
            verified = await self._verifier.verify(token)
        except TokenVerificationError:
            return None
        return McpAccessToken(
            token=token,
            client_id=verified.client_id,
            scopes=sorted(verified.scopes),
            expires_at=verified.expires_at,
            resource=self.resource,  # the verifier checked aud == resource
            subject=verified.subject,
            claims=verified.claims,
        )


def mcp_app(issuer: str, resource: str) -> Any:
    server = MCPServer(
        "notes",
        token_verifier=TesseraTokenVerifier(issuer, resource),
        auth=AuthSettings(
            issuer_url=issuer,
            resource_server_url=resource,
            required_scopes=[SCOPE],
            validate_token_resource=True,
        ),
    )

    @server.tool()
    def whoami() -> str:
        """The caller's token claims that matter here."""
        token = get_access_token()
        assert token is not None and token.claims is not None
        return json.dumps({"aud": token.claims["aud"], "sub": token.subject, "client_id": token.client_id})

    return server.streamable_http_app()


@contextmanager
def running(app: Any, port: int) -> Iterator[LiveServer]:
    server = LiveServer(app, port).start()
    try:
        yield server
    finally:
        server.stop()


@asynccontextmanager
async def stack(tmp_path: Path, **settings: Any) -> AsyncIterator[tuple[str, str, Services]]:
    """Tessera and the MCP server on loopback ports; yields (issuer, MCP URL, Tessera's services)."""
    tessera_port, mcp_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{tessera_port}"
    mcp_url = f"http://127.0.0.1:{mcp_port}/mcp"
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'mcp.db'}",
        "data_dir": tmp_path,
        "issuer": issuer,
        "master_key": "m" * 43,
        **settings,
    }
    # Seed from this loop (the live servers have their own), then close: database connections stay per loop.
    seed = Services(Settings(**values))
    await upgrade(seed.db)
    await seed.users.create(EMAIL, PASSWORD, name="Ada", email_verified=True)
    store = seed.oauth.api_store
    api = seed.oauth.build_api(mcp_url, scopes={SCOPE: "Use the notes tools"}, name="Notes MCP server")
    async with seed.db.transaction() as conn:
        await store.insert(api, conn=conn)
    await seed.aclose()

    services = Services(Settings(**values))
    with running(create_app(services=services), tessera_port), running(mcp_app(issuer, mcp_url), mcp_port):
        yield issuer, mcp_url, services


async def call_whoami(provider: OAuthClientProvider, mcp_url: str) -> dict[str, Any]:
    async with (
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        streamable_http_client(mcp_url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool("whoami", {})
    assert not result.is_error, result
    text = result.content[0].text  # type: ignore[union-attr]
    return dict(json.loads(text))


def audience_of(token: str) -> Any:
    return json.loads(extract_compact(token.encode()).payload)["aud"]


async def test_mcp_client_registers_dynamically_and_calls_a_tool(tmp_path: Path) -> None:
    async with stack(tmp_path) as (issuer, mcp_url, _services):
        # The MCP server answers 401 with RFC 9728 metadata pointing at Tessera.
        async with httpx.AsyncClient() as plain:
            challenge = await plain.post(mcp_url, json={})
            assert challenge.status_code == 401
            assert "resource_metadata=" in challenge.headers["www-authenticate"]

        callback = "http://127.0.0.1:33418/callback"
        agent = UserAgent(issuer, callback)
        storage = MemoryStorage()
        provider = OAuthClientProvider(
            server_url=mcp_url,
            client_metadata=OAuthClientMetadata(
                client_name="Notes agent <script>",
                redirect_uris=[callback],
                grant_types=["authorization_code", "refresh_token"],
            ),
            storage=storage,
            redirect_handler=agent.redirect_handler,
            callback_handler=agent.callback_handler,
        )
        claims = await call_whoami(provider, mcp_url)

        assert claims["aud"] == mcp_url
        assert storage.client is not None and storage.client.client_id == claims["client_id"]
        assert storage.tokens is not None and audience_of(storage.tokens.access_token) == mcp_url
        authorization_url = agent.visited[0]
        query = parse_qs(urlsplit(authorization_url).query)
        assert query["resource"] == [mcp_url] and query["code_challenge_method"] == ["S256"]
        assert authorization_url.startswith(f"{issuer}/authorize?")


async def test_mcp_client_with_a_client_id_metadata_document(tmp_path: Path) -> None:
    async with document_server() as docs:
        callback = "http://127.0.0.1:33419/callback"
        docs.routes["/oauth/mcp-client.json"] = Route(
            body=json.dumps(
                {
                    "client_id": CLIENT_DOC_URL,
                    "client_name": "Notes agent (CIMD)",
                    "redirect_uris": [callback],
                    "grant_types": ["authorization_code", "refresh_token"],
                    "token_endpoint_auth_method": "none",
                }
            ).encode(),
            headers={"content-type": "application/json", "cache-control": "max-age=300"},
        )
        async with stack(tmp_path, client_id_metadata_document_supported=True, registration="off") as (
            issuer,
            mcp_url,
            services,
        ):
            # The resolver hook: Tessera fetches https://agent.test/... from the loopback fixture.
            fetcher = LoopbackFetcher(docs.port)
            services.oauth.metadata_documents.fetcher = fetcher
            agent = UserAgent(issuer, callback)
            storage = MemoryStorage()
            provider = OAuthClientProvider(
                server_url=mcp_url,
                client_metadata=OAuthClientMetadata(
                    client_name="Notes agent (CIMD)",
                    redirect_uris=[callback],
                    grant_types=["authorization_code", "refresh_token"],
                    token_endpoint_auth_method="none",
                ),
                storage=storage,
                redirect_handler=agent.redirect_handler,
                callback_handler=agent.callback_handler,
                client_metadata_url=CLIENT_DOC_URL,
            )
            claims = await call_whoami(provider, mcp_url)
            assert claims["aud"] == mcp_url and claims["client_id"] == CLIENT_DOC_URL
            assert fetcher.fetched and set(fetcher.fetched) == {CLIENT_DOC_URL}
            # Registration is off, so the client was known from its document alone.
            assert storage.client is not None and storage.client.client_id == CLIENT_DOC_URL
            assert storage.tokens is not None and audience_of(storage.tokens.access_token) == mcp_url
