"""requests-oauth2client (a real, independent client) gets client-credentials tokens from a server on a real
loopback port, authenticating with client_secret_basic and with private_key_jwt (inline jwks and jwks_uri)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from jwskate import Jwk
from requests_oauth2client import OAuth2Client, PrivateKeyJwt
from requests_oauth2client.exceptions import InvalidClient
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from tessera.services import Services
from tessera.storage.migrate import upgrade
from tessera.web.app import create_app
from tests.conftest import free_port
from tests.oauth.support import make_settings
from tests.support.live import serve

API = "https://inventory.example/api"


async def _register(settings: Any, **client_kwargs: Any) -> tuple[str, str | None]:
    services = Services(settings)
    try:
        await upgrade(services.db)
        if await services.oauth.api_store.get(API) is None:
            api = services.oauth.build_api(API, scopes={"stock:read": "", "stock:write": ""})
            async with services.db.transaction() as conn:
                await services.oauth.api_store.insert(api, conn=conn)
        made = services.oauth.build_client(client_name="Inventory agent", **client_kwargs)
        async with services.db.transaction() as conn:
            await services.oauth.client_store.insert(made.client, conn=conn)
        return made.client.client_id, made.client_secret
    finally:
        await services.aclose()


def _live_settings(tmp_path: Path) -> tuple[Any, int]:
    port = free_port()
    return make_settings(tmp_path, issuer=f"http://127.0.0.1:{port}"), port


def test_client_secret_basic(tmp_path: Path) -> None:
    settings, port = _live_settings(tmp_path)
    client_id, secret = asyncio.run(_register(settings, grant_types=["client_credentials"]))
    assert secret is not None
    with serve(create_app(settings), port=port) as server:
        oauth = OAuth2Client.from_discovery_endpoint(
            issuer=server.url, auth=(client_id, secret), testing=True
        )
        token = oauth.client_credentials(scope="stock:read", resource=API)
        assert token.scope == "stock:read" and token.expires_in and token.expires_in > 3000
        introspected = oauth.introspect_token(token.access_token)
        assert introspected["active"] is True and introspected["aud"] == API
        assert introspected["sub"] == client_id and introspected["client_id"] == client_id
        oauth.revoke_access_token(token.access_token)
        assert oauth.introspect_token(token.access_token) == {"active": False}
        wrong = OAuth2Client(f"{server.url}/oauth/token", auth=(client_id, secret + "x"), testing=True)
        with pytest.raises(InvalidClient):
            wrong.client_credentials(resource=API)


def test_private_key_jwt_inline_jwks(tmp_path: Path) -> None:
    settings, port = _live_settings(tmp_path)
    key = Jwk.generate(alg="ES256", kid="agent-key-1")
    client_id, secret = asyncio.run(
        _register(settings, grant_types=["client_credentials"], jwks={"keys": [key.public_jwk().to_dict()]})
    )
    assert secret is None
    with serve(create_app(settings), port=port) as server:
        oauth = OAuth2Client.from_discovery_endpoint(
            issuer=server.url, auth=PrivateKeyJwt(client_id, key), testing=True
        )
        token = oauth.client_credentials(scope="stock:write", resource=API)
        assert token.scope == "stock:write"
        # The client's own key is not the server's: a token signed by the client is rejected at introspection.
        assert oauth.introspect_token(token.access_token)["active"] is True
        other = Jwk.generate(alg="ES256", kid="agent-key-1")
        impostor = OAuth2Client(
            f"{server.url}/oauth/token", auth=PrivateKeyJwt(client_id, other), testing=True
        )
        with pytest.raises(InvalidClient):
            impostor.client_credentials(resource=API)


def test_private_key_jwt_with_jwks_uri(tmp_path: Path) -> None:
    key = Jwk.generate(alg="ES256", kid="rotating-1")
    published: dict[str, Any] = {"keys": [key.public_jwk().to_dict()]}

    async def jwks(_request: Any) -> JSONResponse:
        return JSONResponse(published)

    with serve(Starlette(routes=[Route("/jwks.json", jwks)])) as keys_host:
        settings, port = _live_settings(tmp_path)
        client_id, _ = asyncio.run(
            _register(settings, grant_types=["client_credentials"], jwks_uri=f"{keys_host.url}/jwks.json")
        )
        with serve(create_app(settings), port=port) as server:
            oauth = OAuth2Client(
                f"{server.url}/oauth/token", auth=PrivateKeyJwt(client_id, key), testing=True
            )
            assert oauth.client_credentials(resource=API).access_token
            # The client rotates its key: the server meets an unknown kid and fetches the JWKS again.
            new_key = Jwk.generate(alg="ES256", kid="rotating-2")
            published["keys"] = [new_key.public_jwk().to_dict()]
            rotated = OAuth2Client(
                f"{server.url}/oauth/token", auth=PrivateKeyJwt(client_id, new_key), testing=True
            )
            assert rotated.client_credentials(resource=API).access_token
            response = httpx.post(f"{server.url}/oauth/token", data={"grant_type": "client_credentials"})
            assert response.status_code == 401
