"""Client ID Metadata Documents: the URL rules, the SSRF guard, size/time limits, caching, and a full code
flow with an https client_id served from a loopback fixture through the test resolver hook."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from tessera.cli.tls import ensure_dev_tls
from tessera.oauth.metadata_documents import (
    MAX_CACHE_SECONDS,
    MIN_CACHE_SECONDS,
    FetchRefused,
    SafeHttp,
    address_is_public,
    cache_seconds,
    check_client_id_url,
)
from tests.oauth.extras.support import LoopbackFetcher, Route, document_server, to_loopback
from tests.oauth.support import ISSUER, Browser, callback_params, environment

CLIENT_URL = "https://client.test/oauth/client.json"
REDIRECT = "http://127.0.0.1:7777/callback"


def document(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "client_id": CLIENT_URL,
        "client_name": "Doc <i>Agent</i>",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code"],
        "token_endpoint_auth_method": "none",
    }
    doc.update(overrides)
    return doc


def route(doc: Any, **kwargs: Any) -> Route:
    return Route(body=json.dumps(doc).encode(), **kwargs)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("127.8.9.10", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # CGNAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),  # multicast
        ("239.255.255.250", False),
        ("240.0.0.1", False),  # reserved
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::ffff:10.0.0.1", False),
        ("2002:7f00:0001::1", False),  # 6to4 of 127.0.0.1
        ("not-an-ip", False),
    ],
)
def test_address_is_public(address: str, public: bool) -> None:
    assert address_is_public(address) is public


@pytest.mark.parametrize(
    "url",
    [
        "http://client.test/c.json",
        "https://client.test",
        "https://client.test/",
        "https://client.test/a/../c.json",
        "https://client.test/./c.json",
        "https://client.test/c.json#frag",
        "https://user:pw@client.test/c.json",
        "https://client.test/c json",
        "https://client.test:99999/c.json",
        "https://client.test/" + "x" * 2100,
    ],
)
def test_client_id_url_rules(url: str) -> None:
    with pytest.raises(FetchRefused):
        check_client_id_url(url)


def test_cache_lifetime_follows_http_caching_within_bounds() -> None:
    now = 1_800_000_000.0
    assert cache_seconds(httpx.Headers({"cache-control": "public, max-age=600"}), now) == 600
    assert cache_seconds(httpx.Headers({"cache-control": "max-age=5"}), now) == MIN_CACHE_SECONDS
    assert cache_seconds(httpx.Headers({"cache-control": "max-age=99999999"}), now) == MAX_CACHE_SECONDS
    assert cache_seconds(httpx.Headers({"cache-control": "no-store"}), now) == MIN_CACHE_SECONDS
    far = "Fri, 01 Jan 2038 00:00:00 GMT"  # years after ``now``: clamped to a day
    assert cache_seconds(httpx.Headers({"expires": far}), now) == MAX_CACHE_SECONDS
    soon = email.utils.formatdate(now + 1200, usegmt=True)
    assert cache_seconds(httpx.Headers({"expires": soon}), now) == 1200


async def test_private_addresses_are_refused_before_connecting(tmp_path: Path) -> None:
    async with document_server() as server:
        server.routes["/c.json"] = route(document())
        http = SafeHttp(timeout=2.0)
        try:
            for url in (
                f"https://127.0.0.1:{server.port}/c.json",
                f"https://localhost:{server.port}/c.json",
                f"https://[::1]:{server.port}/c.json",
                f"https://[::ffff:127.0.0.1]:{server.port}/c.json",
                "https://169.254.169.254/latest/meta-data",
                "https://10.0.0.1/c.json",
            ):
                with pytest.raises(FetchRefused, match=r"not public|resolve"):
                    await http.get(url)
        finally:
            await http.aclose()

        async def mixed(host: str, port: int) -> list[str]:
            return ["93.184.216.34", "127.0.0.1"]  # one internal answer is enough to refuse

        sneaky = SafeHttp(timeout=2.0, resolve=mixed)
        try:
            with pytest.raises(FetchRefused, match="not public"):
                await sneaky.get(f"https://rebind.test:{server.port}/c.json")
        finally:
            await sneaky.aclose()
        # Plain http is refused by the production fetcher whatever the address.
        plain = SafeHttp(timeout=2.0, resolve=to_loopback, allow_private=True)
        try:
            with pytest.raises(FetchRefused, match="https"):
                await plain.get(f"http://client.test:{server.port}/c.json")
        finally:
            await plain.aclose()
        assert server.received == []


async def test_server_side_lookup_with_the_default_fetcher_refuses_loopback(tmp_path: Path) -> None:
    async with (
        environment(tmp_path, client_id_metadata_document_supported=True) as env,
        document_server() as server,
    ):
        url = f"https://localhost:{server.port}/c.json"
        server.routes["/c.json"] = route(document(client_id=url))
        client, reason = await env.services.oauth.metadata_documents.lookup(url)
        assert client is None and reason is not None and "not public" in reason
        async with env.client() as http:
            page = await http.get("/authorize", params={"client_id": url, "response_type": "code"})
            assert page.status_code == 400 and "not registered" in page.text
        assert server.received == []


@pytest.mark.parametrize(
    ("name", "served", "why"),
    [
        ("other client_id", route(document(client_id="https://client.test/other.json")), "client_id"),
        ("too large", route(document(client_name="x" * 6000)), "larger"),
        ("too large, chunks", route(document(padding=["y" * 100] * 80)), "larger"),
        ("not json", Route(body=b"<html>hi</html>", headers={"content-type": "text/html"}), "JSON"),
        ("bad json", Route(body=b"{nope"), "JSON"),
        ("a list", route([document()]), "object"),
        ("redirect", Route(status=302, headers={"location": "http://169.254.169.254/"}), "302"),
        ("404", Route(status=404, body=b"{}"), "404"),
        ("has a secret", route(document(client_secret="s3cret")), "secret"),
        ("shared-secret method", route(document(token_endpoint_auth_method="client_secret_basic")), "secret"),
        ("bad redirect uri", route(document(redirect_uris=["http://evil.example/cb"])), "redirect"),
        ("fragment redirect", route(document(redirect_uris=["https://a.example/cb#x"])), "fragment"),
        ("no redirect uris", route(document(redirect_uris=[])), "redirect"),
    ],
)
async def test_documents_that_are_refused(tmp_path: Path, name: str, served: Route, why: str) -> None:
    async with (
        environment(tmp_path, client_id_metadata_document_supported=True) as env,
        document_server() as server,
    ):
        fetcher = LoopbackFetcher(server.port)
        env.services.oauth.metadata_documents.fetcher = fetcher
        server.routes["/oauth/client.json"] = served
        try:
            client, reason = await env.services.oauth.metadata_documents.lookup(CLIENT_URL)
            assert client is None, name
            assert reason is not None and why.lower() in reason.lower(), (name, reason)
            # The failure is remembered for a while: a second request does not fetch again.
            again, _ = await env.services.oauth.metadata_documents.lookup(CLIENT_URL)
            assert again is None and len(fetcher.fetched) == 1
            assert [r.path for r in server.received] == ["/oauth/client.json"]  # no redirect followed
        finally:
            await fetcher.aclose()


async def test_slow_servers_are_cut_off(tmp_path: Path) -> None:
    async with document_server() as server:
        server.routes["/oauth/client.json"] = route(document(), delay=3.0)
        server.routes["/oauth/drip.json"] = route(
            document(client_id="https://client.test/oauth/drip.json"), drip=True
        )
        fetcher = LoopbackFetcher(server.port, timeout=0.5)
        try:
            for path in ("/oauth/client.json", "/oauth/drip.json"):
                with pytest.raises(FetchRefused, match="too long"):
                    await fetcher.get(f"https://client.test{path}")
        finally:
            await fetcher.aclose()


async def test_fetch_keeps_the_host_header(tmp_path: Path) -> None:
    async with document_server() as server:
        server.routes["/oauth/client.json"] = route(document())
        fetcher = LoopbackFetcher(server.port)
        try:
            fetched = await fetcher.get(CLIENT_URL)
        finally:
            await fetcher.aclose()
        assert fetched.status == 200
        assert server.received[0].headers["host"] == f"client.test:{server.port}"


async def test_tls_to_the_vetted_address_keeps_sni_and_verifies_the_name(tmp_path: Path) -> None:
    tls = ensure_dev_tls(tmp_path / "tls", hosts=("client.test",))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tls.cert_file, tls.key_file)
    trust = ssl.create_default_context(cafile=str(tls.ca_file))
    async with document_server(tls=server_ctx) as server:
        url = f"https://client.test:{server.port}/oauth/client.json"
        server.routes["/oauth/client.json"] = route(document(client_id=url))
        http = SafeHttp(timeout=3.0, resolve=to_loopback, allow_private=True, verify=trust)
        try:
            fetched = await http.get(url)
            assert fetched.status == 200 and json.loads(fetched.body)["client_id"] == url
            # A name the certificate does not carry fails verification: the name checked is the URL's.
            with pytest.raises(FetchRefused):
                await http.get(f"https://other.test:{server.port}/oauth/client.json")
        finally:
            await http.aclose()


async def test_discovery_advertises_support(tmp_path: Path) -> None:
    async with environment(tmp_path, client_id_metadata_document_supported=True) as env, env.client() as http:
        meta = (await http.get("/.well-known/oauth-authorization-server")).json()
        assert meta["client_id_metadata_document_supported"] is True


async def test_disabled_means_unknown_client(tmp_path: Path) -> None:
    async with (
        environment(tmp_path, client_id_metadata_document_supported=False) as env,
        document_server() as server,
    ):
        fetcher = LoopbackFetcher(server.port)
        env.services.oauth.metadata_documents.fetcher = fetcher
        server.routes["/oauth/client.json"] = route(document())
        try:
            assert await env.services.oauth.clients.get(CLIENT_URL) is None
            assert fetcher.fetched == []
        finally:
            await fetcher.aclose()


async def test_code_flow_with_a_url_client_id(tmp_path: Path) -> None:
    async with (
        environment(tmp_path, client_id_metadata_document_supported=True) as env,
        document_server() as server,
    ):
        fetcher = LoopbackFetcher(server.port)
        env.services.oauth.metadata_documents.fetcher = fetcher
        server.routes["/oauth/client.json"] = route(
            document(), headers={"content-type": "application/json", "cache-control": "max-age=600"}
        )
        user = await env.user()
        verifier = "v" * 64
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = {
            "client_id": CLIENT_URL,
            "response_type": "code",
            "redirect_uri": REDIRECT,
            "scope": "openid",
            "state": "s1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        try:
            async with env.client() as http:
                browser = Browser(http)
                login = await browser.follow(
                    await browser.get("/authorize?" + httpx.QueryParams(query).__str__())
                )
                consent = await browser.login(login, user.email)
                assert "Doc &lt;i&gt;Agent&lt;/i&gt;" in consent.text and "<i>Agent</i>" not in consent.text
                callback = await browser.consent(consent)
                params = callback_params(callback)
                assert params["state"] == "s1" and params["iss"] == ISSUER
                token = await http.post(
                    "/oauth/token",
                    data={
                        "grant_type": "authorization_code",
                        "code": params["code"],
                        "redirect_uri": REDIRECT,
                        "client_id": CLIENT_URL,
                        "code_verifier": verifier,
                    },
                )
                assert token.status_code == 200, token.text
                claims = await env.services.oauth.tokens.verify_access_token(token.json()["access_token"])
                assert claims["client_id"] == CLIENT_URL
            # One fetch for the whole flow: the document was cached per its max-age.
            assert fetcher.fetched == [CLIENT_URL]
        finally:
            await fetcher.aclose()


async def test_token_endpoint_treats_a_refused_document_as_an_unknown_client(tmp_path: Path) -> None:
    async with (
        environment(tmp_path, client_id_metadata_document_supported=True) as env,
        document_server() as server,
    ):
        fetcher = LoopbackFetcher(server.port)
        env.services.oauth.metadata_documents.fetcher = fetcher
        server.routes["/oauth/client.json"] = route(
            document(client_id="https://client.test/someone-else.json")
        )
        try:
            async with env.client() as http:
                token = await http.post(
                    "/oauth/token",
                    data={"grant_type": "authorization_code", "code": "x", "client_id": CLIENT_URL},
                )
                assert token.status_code == 401 and token.json()["error"] == "invalid_client"
                page = await http.get(
                    "/authorize", params={"client_id": CLIENT_URL, "redirect_uri": REDIRECT}
                )
                assert page.status_code == 400 and "location" not in page.headers
        finally:
            await fetcher.aclose()
