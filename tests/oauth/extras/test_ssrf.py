"""A self-registered client cannot make Tessera fetch from internal addresses through its ``jwks_uri``
(private_key_jwt); a client an admin created may use any jwks_uri (here, loopback)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from joserfc import jwt
from joserfc.jwk import ECKey

from tests.oauth.extras.support import Route, document_server
from tests.oauth.support import ISSUER, environment


def assertion(client_id: str, key: ECKey) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": f"{ISSUER}/oauth/token",
        "iat": now,
        "exp": now + 60,
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode({"alg": "ES256", "kid": "k1"}, claims, key)


async def test_jwks_uri_of_a_self_registered_client_goes_through_the_guard(tmp_path: Path) -> None:
    key = ECKey.generate_key("P-256")
    jwks = {"keys": [{**key.as_dict(private=False), "kid": "k1", "alg": "ES256", "use": "sig"}]}
    async with environment(tmp_path) as env, document_server() as internal:
        internal.routes["/jwks.json"] = Route(body=json.dumps(jwks).encode())
        await env.register_api("https://jobs.example/api", {"jobs:run": "Run jobs"})
        async with env.client() as http:
            registered = await http.post(
                "/oidc/register",
                json={
                    "client_name": "Job",
                    "grant_types": ["client_credentials"],
                    "response_types": [],
                    "token_endpoint_auth_method": "private_key_jwt",
                    "jwks_uri": f"https://127.0.0.1:{internal.port}/jwks.json",
                },
            )
            assert registered.status_code == 201, registered.text
            client_id = registered.json()["client_id"]
            token = await http.post(
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "audience": "https://jobs.example/api",
                    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    "client_assertion": assertion(client_id, key),
                },
            )
            assert token.status_code == 401 and token.json()["error"] == "invalid_client"
            assert internal.received == []

            # The same keys at a loopback jwks_uri work for a client the admin registered.
            admin, _ = await env.register_client(
                "Admin job",
                grant_types=["client_credentials"],
                token_endpoint_auth_method="private_key_jwt",
                jwks_uri=f"http://127.0.0.1:{internal.port}/jwks.json",
            )
            ok = await http.post(
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "audience": "https://jobs.example/api",
                    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    "client_assertion": assertion(admin.client_id, key),
                },
            )
            assert ok.status_code == 200, ok.text
            assert [r.path for r in internal.received] == ["/jwks.json"]
