"""private_key_jwt (RFC 7523 3): every malformed, expired, replayed or forged client assertion is
``invalid_client``, and a refused assertion changes nothing."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from tessera.oauth.client_auth import JWT_BEARER_ASSERTION
from tests.oauth.support import ISSUER, environment

API = "https://inventory.example/api"
TOKEN_ENDPOINT = f"{ISSUER}/oauth/token"


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_client_assertion_checks(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await env.register_api(API, {"stock:read": ""})
        key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
        client, _ = await env.register_client(
            "Signer", grant_types=["client_credentials"], jwks={"keys": [key.as_dict(private=False)]}
        )
        cid = client.client_id

        def claims(**overrides: Any) -> dict[str, Any]:
            now = int(time.time())
            values = {
                "iss": cid,
                "sub": cid,
                "aud": TOKEN_ENDPOINT,
                "exp": now + 60,
                "iat": now,
                "jti": f"jti-{time.time_ns()}",
            }
            values.update(overrides)
            return {k: v for k, v in values.items() if v is not None}

        def sign(values: dict[str, Any], header: dict[str, Any] | None = None, signing_key: Any = key) -> str:
            return jwt.encode(header or {"alg": "ES256", "kid": "k1"}, values, signing_key)

        async with env.client() as http:

            async def token(assertion: str, **extra: str) -> Any:
                return await http.post(
                    "/oauth/token",
                    data={
                        "grant_type": "client_credentials",
                        "resource": API,
                        "client_assertion": assertion,
                        "client_assertion_type": JWT_BEARER_ASSERTION,
                        **extra,
                    },
                )

            good = sign(claims(jti="once"))
            assert (await token(good)).status_code == 200
            replay = await token(good)
            assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"

            valid = sign(claims())
            header, payload, signature = valid.split(".")
            other = ECKey.generate_key("P-256", parameters={"kid": "k1"})
            hmac_key = OctKey.import_key(json.dumps(key.as_dict(private=False)).encode())
            forged = [
                sign(claims(exp=int(time.time()) - 120)),  # expired
                sign(claims(exp=None)),  # no exp
                sign(claims(exp=int(time.time()) + 86400)),  # far future (would pin a jti for a day)
                sign(claims(aud="https://other.example/token")),  # someone else's audience
                sign(claims(sub="someone-else")),  # iss != sub
                sign(claims(jti=None)),  # no jti
                sign(claims(), signing_key=other),  # right kid, wrong key
                f"{header}.{b64({**claims(), 'scope': 'x'})}.{signature}",  # tampered payload
                f"{b64({'alg': 'none'})}.{payload}.",  # alg none
                jwt.encode(
                    {"alg": "HS256", "kid": "k1"}, claims(), hmac_key, algorithms=["HS256"]
                ),  # alg switch
                "not.a.jwt",
                "",
            ]
            for assertion in forged:
                response = await token(assertion)
                assert response.status_code in (400, 401), assertion
                assert response.json()["error"] in ("invalid_client", "invalid_request"), assertion
            wrong_type = await token(valid, client_assertion_type="urn:other")
            assert wrong_type.json()["error"] == "invalid_client"
            other_client = await token(valid, client_id="not-this-client")
            assert other_client.json()["error"] == "invalid_client"
            # None of the refused attempts used the valid assertion's jti up.
            assert (await token(valid)).status_code == 200
            # The issuer is an accepted audience too (RFC 7523bis / OIDC Core 9).
            assert (await token(sign(claims(aud=ISSUER)))).status_code == 200
