"""Two `tessera serve` processes on one PostgreSQL: nothing shared lives in one process's memory only.
A code issued by one is redeemed at the other; a token revoked at one is inactive at the other; a client
assertion used at one is refused at the other."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from tessera.oauth.client_auth import JWT_BEARER_ASSERTION
from tessera.oauth.pkce import s256
from tessera.services import Services
from tessera.storage.migrate import upgrade
from tests.conftest import free_port
from tests.oauth.support import Browser, callback_params, make_settings

pytestmark = pytest.mark.postgres

REDIRECT = "https://app.example/callback"
API = "https://ledger.example/api"
MASTER = "p" * 43
VERIFIER = "z" * 64


@contextmanager
def server_process(database_url: str, issuer: str, port: int, tmp_path: Path) -> Iterator[str]:
    env = {
        **os.environ,
        "TESSERA_DATABASE_URL": database_url,
        "TESSERA_ISSUER": issuer,
        "TESSERA_MASTER_KEY": MASTER,
        "TESSERA_AUTO_MIGRATE": "false",
        "TESSERA_DATA_DIR": str(tmp_path),
    }
    log = (tmp_path / f"server-{port}.log").open("wb")
    # `tessera serve` itself (the production start), each a process of its own on the shared database.
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tessera.cli.main",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp_path / f"server-{port}.log").read_text())
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


async def _seed(database_url: str, tmp_path: Path, issuer: str) -> dict[str, Any]:
    services = Services(make_settings(tmp_path, database_url=database_url, issuer=issuer, master_key=MASTER))
    try:
        await upgrade(services.db)
        user = await services.users.create("grace@example.com", "correct horse battery staple", name="Grace")
        api = services.oauth.build_api(API, scopes={"ledger:read": "Read the ledger"})
        web = services.oauth.build_client(
            client_name="Ledger app", redirect_uris=[REDIRECT], scope="openid offline_access ledger:read"
        )
        key = ECKey.generate_key("P-256", parameters={"kid": "m1"})
        signer = services.oauth.build_client(
            client_name="Ledger agent",
            grant_types=["client_credentials"],
            jwks={"keys": [key.as_dict(private=False)]},
        )
        async with services.db.transaction() as conn:
            await services.oauth.api_store.insert(api, conn=conn)
            await services.oauth.client_store.insert(web.client, conn=conn)
            await services.oauth.client_store.insert(signer.client, conn=conn)
        return {"user": user, "web": web, "signer": signer.client, "key": key}
    finally:
        await services.aclose()


async def test_two_processes_share_codes_revocations_and_jtis(postgres_url: str, tmp_path: Path) -> None:
    port_a, port_b = free_port(), free_port()
    issuer = f"http://127.0.0.1:{port_a}"
    seed = await _seed(postgres_url, tmp_path, issuer)
    web_id, web_secret = seed["web"].client.client_id, seed["web"].client_secret
    basic = {"Authorization": "Basic " + base64.b64encode(f"{web_id}:{web_secret}".encode()).decode()}
    with (
        server_process(postgres_url, issuer, port_a, tmp_path) as a,
        server_process(postgres_url, issuer, port_b, tmp_path) as b,
    ):
        query = httpx.QueryParams(
            {
                "response_type": "code",
                "client_id": web_id,
                "redirect_uri": REDIRECT,
                "state": "s1",
                "scope": "openid offline_access ledger:read",
                "resource": API,
                "code_challenge": s256(VERIFIER),
                "code_challenge_method": "S256",
            }
        )
        async with httpx.AsyncClient(base_url=a) as http_a, httpx.AsyncClient(base_url=b) as http_b:
            response = await Browser(http_a, base=a).authorize(f"/authorize?{query}", "grace@example.com")
            code = callback_params(response)["code"]
            # Redeemed at the other process.
            tokens = await http_b.post(
                "/oauth/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": REDIRECT,
                    "code_verifier": VERIFIER,
                },
                headers=basic,
            )
            assert tokens.status_code == 200, tokens.text
            body = tokens.json()
            replay = await http_a.post(
                "/oauth/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": REDIRECT,
                    "code_verifier": VERIFIER,
                },
                headers=basic,
            )
            assert replay.json()["error"] == "invalid_grant"
            assert (
                await http_b.post("/oauth/introspect", data={"token": body["access_token"]}, headers=basic)
            ).json() == {"active": False}

            # A fresh grant: revoked at A, inactive at B (both the access and the refresh token).
            response = await Browser(http_a, base=a).authorize(f"/authorize?{query}", "grace@example.com")
            code = callback_params(response)["code"]
            fresh = (
                await http_a.post(
                    "/oauth/token",
                    data={"grant_type": "authorization_code", "code": code, "code_verifier": VERIFIER},
                    headers=basic,
                )
            ).json()
            active = await http_b.post(
                "/oauth/introspect", data={"token": fresh["access_token"]}, headers=basic
            )
            assert active.json()["active"] is True
            revoke = await http_a.post("/oauth/revoke", data={"token": fresh["refresh_token"]}, headers=basic)
            assert revoke.status_code == 200
            for token in (fresh["access_token"], fresh["refresh_token"]):
                gone = await http_b.post("/oauth/introspect", data={"token": token}, headers=basic)
                assert gone.json() == {"active": False}
            info = await http_b.get("/userinfo", headers={"Authorization": f"Bearer {fresh['access_token']}"})
            assert info.status_code == 401

            # A client assertion used at A is refused at B (the jti store is shared).
            signer, key = seed["signer"], seed["key"]
            now = int(time.time())
            assertion = jwt.encode(
                {"alg": "ES256", "kid": "m1"},
                {
                    "iss": signer.client_id,
                    "sub": signer.client_id,
                    "aud": f"{issuer}/oauth/token",
                    "exp": now + 60,
                    "iat": now,
                    "jti": "cross-process",
                },
                key,
            )
            form = {
                "grant_type": "client_credentials",
                "resource": API,
                "client_assertion": assertion,
                "client_assertion_type": JWT_BEARER_ASSERTION,
            }
            assert (await http_a.post("/oauth/token", data=form)).status_code == 200
            again = await http_b.post("/oauth/token", data=form)
            assert again.status_code == 401 and again.json()["error"] == "invalid_client"

            # Both publish the same keys.
            assert (await http_a.get("/.well-known/jwks.json")).json() == (
                await http_b.get("/.well-known/jwks.json")
            ).json()
