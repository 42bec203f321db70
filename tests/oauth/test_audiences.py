"""Which API a token is for: RFC 8707 ``resource`` and Auth0's ``audience`` name registered APIs only, the
access token's ``aud`` is exactly those, a code flow cannot widen its resources at the token endpoint, and a
token for no API is audienced to userinfo alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet

from tests.oauth.support import ISSUER, environment
from tests.oauth.test_hostile import API, basic, get_code, redeem, setup

LEDGER = "https://ledger.example/api"


async def claims_of(http: Any, token: str) -> dict[str, Any]:
    jwks = KeySet.import_key_set((await http.get("/.well-known/jwks.json")).json())
    decoded = jwt.decode(token, jwks)
    assert decoded.header["typ"] == "at+jwt"
    return dict(decoded.claims)


async def test_client_credentials_audiences(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await env.register_api(API, {"calendar:read": ""})
        await env.register_api(LEDGER, {"ledger:read": ""})
        machine, secret = await env.register_client("Machine", grant_types=["client_credentials"])
        assert secret
        auth = basic(machine.client_id, secret)
        async with env.client() as http:

            async def token(**form: Any) -> Any:
                return await http.post(
                    "/oauth/token", data={"grant_type": "client_credentials", **form}, headers=auth
                )

            # No API named: refused, not a token for some default audience.
            nothing = await token()
            assert nothing.status_code == 400 and nothing.json()["error"] == "invalid_request"
            assert "resource" in nothing.json()["error_description"]

            both = await token(resource=[API, LEDGER])
            assert both.status_code == 200, both.text
            claims = await claims_of(http, both.json()["access_token"])
            assert sorted(claims["aud"]) == sorted([API, LEDGER])
            assert set(claims["scope"].split()) == {"calendar:read", "ledger:read"}
            assert claims["sub"] == claims["client_id"] == machine.client_id

            same = await token(resource=API, audience=API, scope="calendar:read")
            assert (await claims_of(http, same.json()["access_token"]))["aud"] == API

            # A scope another API defines is not granted for this one.
            crossed = await token(resource=API, scope="ledger:read")
            assert crossed.status_code == 400 and crossed.json()["error"] == "invalid_scope"
            # An OpenID scope needs a user.
            openid = await token(resource=API, scope="openid")
            assert openid.json()["error"] == "invalid_scope"
            unknown = await token(audience="https://unknown.example/")
            assert unknown.json()["error"] == "invalid_target"


async def test_code_flow_resources_cannot_grow_at_the_token_endpoint(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        user, client, secret = await setup(env)
        await env.register_api(LEDGER, {"ledger:read": ""})
        async with env.client() as http:
            code = await get_code(
                env, http, client.client_id, user.email, scope="openid calendar:read", resource=API
            )
            wider = await redeem(http, client.client_id, secret, code, resource=LEDGER)
            assert wider.status_code == 400 and wider.json()["error"] == "invalid_target"
            # The refused exchange did not use the code up.
            tokens = await redeem(http, client.client_id, secret, code)
            assert tokens.status_code == 200, tokens.text
            claims = await claims_of(http, tokens.json()["access_token"])
            assert sorted(claims["aud"]) == sorted([API, f"{ISSUER}/userinfo"])

            # No API at all: the token is for userinfo only.
            plain = await get_code(env, http, client.client_id, user.email, scope="openid")
            only = (await redeem(http, client.client_id, secret, plain)).json()["access_token"]
            assert (await claims_of(http, only))["aud"] == f"{ISSUER}/userinfo"
