"""Auth0's Python SDK (``auth0-python``) against a real Tessera over https with a local CA: client
credentials with ``audience`` (JSON bodies with nulls, the secret in the body), private_key_jwt, the code
exchange with PKCE, refresh and revocation. The SDK speaks only https, trusting the CA via
``REQUESTS_CA_BUNDLE``."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import pytest
from auth0.authentication import GetToken, RevokeToken
from auth0.authentication.exceptions import Auth0Error
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from joserfc.jws import extract_compact

from tessera.cli.tls import ensure_dev_tls
from tessera.services import Services
from tessera.settings import Settings
from tessera.storage.migrate import upgrade
from tessera.web.app import create_app
from tests.oauth.extras.test_mcp_sdk import _inputs
from tests.support.live import LiveServer, free_port

PASSWORD = "correct horse battery staple"
EMAIL = "grace@example.com"
API = "https://orders.example/api"
REDIRECT = "http://127.0.0.1:5151/callback"


@dataclass
class Stack:
    issuer: str
    domain: str
    ca_file: Path
    clients: dict[str, tuple[str, str | None]]  # name -> (client_id, secret)
    private_key_pem: str


@asynccontextmanager
async def tessera_over_https(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Stack]:
    tls = ensure_dev_tls(tmp_path / "tls")
    port = free_port()
    domain = f"127.0.0.1:{port}"
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'auth0.db'}",
        "data_dir": tmp_path,
        "issuer": f"https://{domain}",
        "master_key": "a" * 43,
    }
    seed = Services(Settings(**values))
    await upgrade(seed.db)
    await seed.users.create(EMAIL, PASSWORD, name="Grace", email_verified=True)
    oauth = seed.oauth
    api = oauth.build_api(API, scopes={"orders:read": "Read orders"}, name="Orders")
    private_key = ec.generate_private_key(ec.SECP256R1())
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_jwk = ECKey.import_key(private_pem).as_dict(private=False)
    made = {
        "machine": oauth.build_client(client_name="Billing job", grant_types=["client_credentials"]),
        "keyed": oauth.build_client(
            client_name="Keyed job",
            grant_types=["client_credentials"],
            token_endpoint_auth_method="private_key_jwt",
            jwks={"keys": [{**public_jwk, "kid": "job-key", "alg": "ES256", "use": "sig"}]},
        ),
        "spa": oauth.build_client(
            client_name="Orders SPA",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            is_public=True,
        ),
    }
    async with seed.db.transaction() as conn:
        await oauth.api_store.insert(api, conn=conn)
        for new in made.values():
            await oauth.client_store.insert(new.client, conn=conn)
    await seed.aclose()

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls.ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca_file))
    services = Services(Settings(**values))
    server = LiveServer(
        create_app(services=services),
        port,
        ssl_certfile=str(tls.cert_file),
        ssl_keyfile=str(tls.key_file),
        timeout_graceful_shutdown=2,
    ).start()
    try:
        yield Stack(
            issuer=f"https://{domain}",
            domain=domain,
            ca_file=tls.ca_file,
            clients={name: (new.client.client_id, new.client_secret) for name, new in made.items()},
            private_key_pem=private_pem,
        )
    finally:
        server.stop()


async def jwks_of(stack: Stack) -> KeySet:
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(stack.ca_file))) as http:
        return KeySet.import_key_set((await http.get(f"{stack.issuer}/.well-known/jwks.json")).json())


def verified_claims(token: str, keys: KeySet) -> dict[str, Any]:
    header = extract_compact(token.encode()).headers()
    return dict(jwt.decode(token, keys, algorithms=[header["alg"]]).claims)


async def test_client_credentials_with_audience(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with tessera_over_https(tmp_path, monkeypatch) as stack:
        client_id, secret = stack.clients["machine"]
        sdk = GetToken(stack.domain, client_id, client_secret=secret)
        # JSON body {"client_id", "audience", "grant_type", "organization": null, "client_secret"}.
        token = await asyncio.to_thread(sdk.client_credentials, audience=API)
        assert token["token_type"] == "Bearer" and token["expires_in"] > 0
        claims = verified_claims(token["access_token"], await jwks_of(stack))
        assert claims["aud"] == API and claims["client_id"] == client_id and claims["iss"] == stack.issuer

        wrong = GetToken(stack.domain, client_id, client_secret="not-the-secret")
        with pytest.raises(Auth0Error) as failed:
            await asyncio.to_thread(wrong.client_credentials, audience=API)
        assert failed.value.status_code == 401 and failed.value.error_code == "invalid_client"
        with pytest.raises(Auth0Error) as unknown_api:
            await asyncio.to_thread(sdk.client_credentials, audience="https://not-registered.example/")
        assert unknown_api.value.error_code in ("invalid_target", "access_denied", "invalid_request")


async def test_private_key_jwt_assertion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with tessera_over_https(tmp_path, monkeypatch) as stack:
        client_id, _ = stack.clients["keyed"]
        sdk = GetToken(
            stack.domain,
            client_id,
            client_assertion_signing_key=stack.private_key_pem,
            client_assertion_signing_alg="ES256",
        )
        token = await asyncio.to_thread(sdk.client_credentials, audience=API)
        assert verified_claims(token["access_token"], await jwks_of(stack))["client_id"] == client_id


async def authorize(stack: Stack, client_id: str, verifier: str) -> str:
    """The browser's part of the code flow, over https; returns the code."""
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode(
        {
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": REDIRECT,
            "scope": "openid offline_access orders:read",
            "audience": API,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "xyz",
        }
    )
    context = ssl.create_default_context(cafile=str(stack.ca_file))
    async with httpx.AsyncClient(base_url=stack.issuer, verify=context) as http:
        response = await http.get(f"/authorize?{query}")
        for _ in range(10):
            if response.status_code in (302, 303):
                location = urljoin(str(response.url), response.headers["location"])
                if location.startswith(REDIRECT):
                    return parse_qs(urlsplit(location).query)["code"][0]
                response = await http.get(location)
            elif 'autocomplete="current-password"' in response.text:
                fields = dict(_inputs(response.text))
                fields.update(email=EMAIL, password=PASSWORD)
                response = await http.post("/login", data=fields)
            elif 'name="decision"' in response.text:
                pairs = [p for p in _inputs(response.text) if p[0] != "decision"] + [("decision", "allow")]
                response = await http.post(
                    "/authorize/decision",
                    content=urlencode(pairs),
                    headers={"content-type": "application/x-www-form-urlencoded"},
                )
            else:
                raise AssertionError(response.text[:400])
    raise AssertionError("too many steps")


async def test_code_exchange_refresh_and_revoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with tessera_over_https(tmp_path, monkeypatch) as stack:
        client_id, _ = stack.clients["spa"]
        verifier = "q" * 64
        code = await authorize(stack, client_id, verifier)
        sdk = GetToken(stack.domain, client_id)
        tokens = await asyncio.to_thread(sdk.authorization_code_pkce, verifier, code, REDIRECT)
        keys = await jwks_of(stack)
        access = verified_claims(tokens["access_token"], keys)
        assert API in ([access["aud"]] if isinstance(access["aud"], str) else access["aud"])
        assert verified_claims(tokens["id_token"], keys)["aud"] == client_id
        assert tokens["refresh_token"]

        # refresh_token() posts "scope": "" (meaning: the scopes already granted).
        refreshed = await asyncio.to_thread(sdk.refresh_token, tokens["refresh_token"])
        assert refreshed["access_token"] != tokens["access_token"]
        rotated = refreshed.get("refresh_token", tokens["refresh_token"])

        # The code cannot be exchanged twice.
        with pytest.raises(Auth0Error) as replay:
            await asyncio.to_thread(sdk.authorization_code_pkce, verifier, code, REDIRECT)
        assert replay.value.error_code == "invalid_grant"

        await asyncio.to_thread(RevokeToken(stack.domain, client_id).revoke_refresh_token, rotated)
        with pytest.raises(Auth0Error) as revoked:
            await asyncio.to_thread(sdk.refresh_token, rotated)
        assert revoked.value.error_code == "invalid_grant"
        assert json.dumps(revoked.value.content or {})  # the SDK parsed an RFC 6749 error object
