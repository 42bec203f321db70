"""Hostile and malformed input: each gets the specification's error and changes nothing."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from tessera.core.clock import FrozenClock
from tessera.oauth.pkce import s256
from tests.oauth.support import ISSUER, Browser, Env, callback_params, environment

REDIRECT = "https://app.example/callback"
API = "https://calendar.example/api"
VERIFIER = "v" * 50


def authorize_url(client_id: str, **overrides: Any) -> str:
    params: dict[str, Any] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid offline_access",
        "state": "st-123",
        "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return "/authorize?" + urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def setup(env: Env) -> tuple[Any, Any, str]:
    user = await env.user()
    client, secret = await env.register_client(
        "Agent", redirect_uris=[REDIRECT], grant_types=["authorization_code", "refresh_token"]
    )
    assert secret is not None
    await env.register_api(API, {"calendar:read": "Read your calendar"})
    return user, client, secret


async def get_code(env: Env, http: httpx.AsyncClient, client_id: str, email: str, **overrides: Any) -> str:
    response = await Browser(http).authorize(authorize_url(client_id, **overrides), email)
    params = callback_params(response)
    assert "code" in params, params
    return params["code"]


async def redeem(
    http: httpx.AsyncClient, client_id: str, secret: str, code: str, **extra: str
) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": VERIFIER,
    }
    data.update(extra)
    return await http.post("/oauth/token", data=data, headers=basic(client_id, secret))


async def introspect(http: httpx.AsyncClient, client_id: str, secret: str, token: str) -> dict[str, Any]:
    response = await http.post("/oauth/introspect", data={"token": token}, headers=basic(client_id, secret))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_unknown_client_and_bad_redirect_uri_show_a_page_and_never_redirect(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        _user, client, _ = await setup(env)
        public, _ = await env.register_client(
            "CLI", redirect_uris=["http://127.0.0.1/callback"], is_public=True
        )
        # A confidential client registered on loopback too: for it, the port must match exactly.
        local_server, _ = await env.register_client(
            "Local web app", redirect_uris=["http://127.0.0.1:8080/cb"]
        )
        async with env.client() as http:
            for url in (
                authorize_url("no-such-client"),
                authorize_url(local_server.client_id, redirect_uri="http://127.0.0.1:9999/cb"),
                authorize_url(local_server.client_id, redirect_uri="http://127.0.0.1/cb"),
                authorize_url(client.client_id, redirect_uri="https://evil.example/callback"),
                authorize_url(client.client_id, redirect_uri=REDIRECT + "/extra"),
                authorize_url(client.client_id, redirect_uri=REDIRECT.upper()),
                # RFC 8252 7.3's any-port rule is for loopback URIs of native (public) clients only.
                authorize_url(client.client_id, redirect_uri="http://127.0.0.1:9999/callback"),
                authorize_url(public.client_id, redirect_uri="http://127.0.0.1:9999/other"),
                authorize_url(public.client_id, redirect_uri="http://127.0.0.2:9999/callback"),
            ):
                response = await http.get(url)
                assert response.status_code == 400, url
                assert "location" not in response.headers
                assert response.headers["content-type"].startswith("text/html")
            # The native client's loopback URI with any port is accepted (it asks the user to sign in).
            ok = await http.get(
                authorize_url(public.client_id, redirect_uri="http://127.0.0.1:51234/callback")
            )
            assert ok.status_code == 303 and ok.headers["location"].startswith("/login?")
            exact = await http.get(
                authorize_url(local_server.client_id, redirect_uri="http://127.0.0.1:8080/cb")
            )
            assert exact.status_code == 303 and exact.headers["location"].startswith("/login?")


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain", "code_challenge": VERIFIER}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"resource": "https://unknown.example/"}, "invalid_target"),
        ({"scope": "openid calendar:write"}, "invalid_scope"),
        ({"prompt": "none"}, "login_required"),
    ],
)
async def test_bad_authorization_requests_redirect_with_error_state_and_iss(
    tmp_path: Path, overrides: dict[str, Any], error: str
) -> None:
    async with environment(tmp_path) as env:
        _user, client, _ = await setup(env)
        async with env.client() as http:
            response = await http.get(authorize_url(client.client_id, **overrides))
            params = callback_params(response)
            assert response.headers["location"].startswith(REDIRECT + "?")
            assert params["error"] == error and params["state"] == "st-123" and params["iss"] == ISSUER


async def test_prompt_none_without_consent_is_consent_required(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        user, client, _ = await setup(env)
        async with env.client() as http:
            browser = Browser(http)
            # Sign in but deny: nothing is granted, so a silent request needs consent.
            denied = await browser.authorize(authorize_url(client.client_id), user.email, consent="deny")
            assert callback_params(denied)["error"] == "access_denied"
            silent = await http.get(authorize_url(client.client_id, prompt="none"))
            assert callback_params(silent)["error"] == "consent_required"


async def test_code_replay_fails_and_revokes_what_the_code_issued(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        user, client, secret = await setup(env)
        async with env.client() as http:
            code = await get_code(env, http, client.client_id, user.email)
            # A wrong verifier fails and does not use the code up.
            wrong = await redeem(http, client.client_id, secret, code, code_verifier="w" * 50)
            assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
            first = await redeem(http, client.client_id, secret, code)
            assert first.status_code == 200, first.text
            tokens = first.json()
            assert (await introspect(http, client.client_id, secret, tokens["access_token"]))["active"]

            replay = await redeem(http, client.client_id, secret, code)
            assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
            assert replay.headers["cache-control"] == "no-store"
            assert await introspect(http, client.client_id, secret, tokens["access_token"]) == {
                "active": False
            }
            refresh = await http.post(
                "/oauth/token",
                data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                headers=basic(client.client_id, secret),
            )
            assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
        reused = await env.services.audit.query(type="authorization_code.reused")
        assert len(reused) == 1 and reused[0].client_id == client.client_id


async def test_rotated_refresh_token_replay_revokes_the_family(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        user, client, secret = await setup(env)
        async with env.client() as http:
            code = await get_code(env, http, client.client_id, user.email)
            tokens = (await redeem(http, client.client_id, secret, code)).json()

            async def refresh(token: str) -> httpx.Response:
                return await http.post(
                    "/oauth/token",
                    data={"grant_type": "refresh_token", "refresh_token": token},
                    headers=basic(client.client_id, secret),
                )

            second = await refresh(tokens["refresh_token"])
            assert second.status_code == 200, second.text
            newer = second.json()
            assert newer["refresh_token"] != tokens["refresh_token"]
            # An attacker replays the first (rotated) refresh token.
            replay = await refresh(tokens["refresh_token"])
            assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
            # The whole family is gone: the newest refresh token and the grant's access tokens.
            assert (await refresh(newer["refresh_token"])).json()["error"] == "invalid_grant"
            assert await introspect(http, client.client_id, secret, newer["access_token"]) == {
                "active": False
            }
            assert await introspect(http, client.client_id, secret, newer["refresh_token"]) == {
                "active": False
            }
        assert len(await env.services.audit.query(type="refresh_token.reused")) == 1


async def test_refresh_token_needs_offline_access_and_scope_cannot_grow(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        user, client, secret = await setup(env)
        async with env.client() as http:
            code = await get_code(env, http, client.client_id, user.email, scope="openid")
            tokens = (await redeem(http, client.client_id, secret, code)).json()
            assert "refresh_token" not in tokens and "id_token" in tokens
            code = await get_code(env, http, client.client_id, user.email, scope="openid offline_access")
            tokens = (await redeem(http, client.client_id, secret, code)).json()
            wider = await http.post(
                "/oauth/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": tokens["refresh_token"],
                    "scope": "openid offline_access profile",
                },
                headers=basic(client.client_id, secret),
            )
            assert wider.json()["error"] == "invalid_scope"
            # The failed attempt did not rotate the token.
            narrower = await http.post(
                "/oauth/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": tokens["refresh_token"],
                    "scope": "openid",
                },
                headers=basic(client.client_id, secret),
            )
            assert narrower.status_code == 200 and narrower.json()["scope"] == "openid"


async def test_client_secret_of_another_client_and_wrong_auth_are_invalid_client(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await env.register_api(API, {"calendar:read": ""})
        one, secret_one = await env.register_client("One", grant_types=["client_credentials"])
        two, secret_two = await env.register_client("Two", grant_types=["client_credentials"])
        assert secret_one and secret_two
        async with env.client() as http:
            form = {"grant_type": "client_credentials", "resource": API}
            crossed = await http.post("/oauth/token", data=form, headers=basic(two.client_id, secret_one))
            assert crossed.status_code == 401 and crossed.json()["error"] == "invalid_client"
            assert crossed.headers["www-authenticate"].startswith("Basic")
            posted = await http.post(
                "/oauth/token", data={**form, "client_id": one.client_id, "client_secret": secret_two}
            )
            assert posted.status_code == 401 and posted.json()["error"] == "invalid_client"
            both = await http.post(
                "/oauth/token",
                data={**form, "client_secret": secret_one},
                headers=basic(one.client_id, secret_one),
            )
            assert both.status_code == 400 and both.json()["error"] == "invalid_request"
            no_auth = await http.post("/oauth/token", data={**form, "client_id": one.client_id})
            assert no_auth.status_code == 401
            unknown_api = await http.post(
                "/oauth/token",
                data={**form, "resource": "https://nope.example"},
                headers=basic(one.client_id, secret_one),
            )
            assert unknown_api.json()["error"] == "invalid_target"
            ok = await http.post("/oauth/token", data=form, headers=basic(one.client_id, secret_one))
            assert ok.status_code == 200
        await env.services.oauth.audit_buffer.flush()
        failed = await env.services.audit.query(type="client.authentication_failed")
        assert len(failed) == 3


async def test_malformed_and_oversized_bodies(tmp_path: Path) -> None:
    async with environment(tmp_path, max_body_bytes=4096) as env:
        await env.register_api(API, {"calendar:read": ""})
        one, secret = await env.register_client("One", grant_types=["client_credentials"])
        assert secret
        async with env.client() as http:
            auth = basic(one.client_id, secret)
            cases = [
                (
                    b"grant_type=client_credentials&grant_type=client_credentials",
                    "application/x-www-form-urlencoded",
                ),
                (b"{not json", "application/json"),
                (b"[1,2]", "application/json"),
                (b"grant_type=client_credentials", "text/plain"),
                (b"\xff\xfe", "application/x-www-form-urlencoded"),
                (b"&".join(b"a%d=1" % i for i in range(500)), "application/x-www-form-urlencoded"),
            ]
            for body, content_type in cases:
                response = await http.post(
                    "/oauth/token", content=body, headers={**auth, "content-type": content_type}
                )
                assert response.status_code == 400, (body[:40], response.text)
                assert response.json()["error"] == "invalid_request"
            big = await http.post(
                "/oauth/token",
                content=b"x=" + b"a" * 8000,
                headers={**auth, "content-type": "application/x-www-form-urlencoded"},
            )
            assert big.status_code == 413
            missing = await http.post("/oauth/token", data={"resource": API}, headers=auth)
            assert missing.json()["error"] == "invalid_request"
            unsupported = await http.post("/oauth/token", data={"grant_type": "password"}, headers=auth)
            assert unsupported.json()["error"] == "unsupported_grant_type"
        # None of them issued anything.
        await env.services.oauth.audit_buffer.flush()
        assert await env.services.audit.query(type="token.issued") == []
        issued = env.services.metrics.registry.get_sample_value(
            "tessera_tokens_issued_total", {"grant_type": "client_credentials"}
        )
        assert issued in (None, 0.0)


async def test_auth0_style_json_body_with_nulls(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        await env.register_api(API, {"calendar:read": "", "calendar:write": ""})
        one, secret = await env.register_client("One", grant_types=["client_credentials"])
        async with env.client() as http:
            response = await http.post(
                "/oauth/token",
                json={
                    "client_id": one.client_id,
                    "client_secret": secret,
                    "audience": API,
                    "grant_type": "client_credentials",
                    "organization": None,
                    "scope": "",
                },
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["scope"] == "calendar:read calendar:write" and body["token_type"] == "Bearer"
            assert response.headers["cache-control"] == "no-store"


async def test_consent_form_needs_its_csrf_token(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        user, client, _ = await setup(env)
        async with env.client() as http:
            browser = Browser(http)
            page = await browser.follow(await browser.get(authorize_url(client.client_id)))
            page = await browser.login(page, user.email)
            assert 'name="decision"' in page.text
            from tests.oauth.support import form_pairs

            pairs = [(n, v) for n, v in form_pairs(page.text) if n not in ("decision", "csrf_token")]
            for token in (None, "forged", "0" * 64):
                data = pairs + [("decision", "allow")] + ([("csrf_token", token)] if token else [])
                response = await http.post(
                    "/authorize/decision",
                    content=urlencode(data),
                    headers={"content-type": "application/x-www-form-urlencoded"},
                )
                assert response.status_code == 403 and "location" not in response.headers
        async with env.services.db.read() as conn:
            assert await env.services.oauth.consents.get(user.id, client.client_id, conn=conn) is None


async def test_expired_tampered_and_unsigned_access_tokens(tmp_path: Path) -> None:
    clock = FrozenClock(at=time.time())
    async with environment(tmp_path, clock=clock) as env:
        user, client, secret = await setup(env)
        async with env.client() as http:
            code = await get_code(env, http, client.client_id, user.email, scope="openid")
            token = (await redeem(http, client.client_id, secret, code)).json()["access_token"]
            header, payload, signature = token.split(".")
            claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
            claims["sub"] = "someone-else"
            forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
            none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"at+jwt"}').rstrip(b"=").decode()
            other_key = ECKey.generate_key(
                "P-256", parameters={"kid": json.loads(base64.urlsafe_b64decode(header + "=="))["kid"]}
            )
            foreign = jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": other_key.kid}, claims, other_key)
            bad = [
                f"{header}.{forged_payload}.{signature}",
                f"{none_header}.{payload}.",
                foreign,
                "not-a-jwt",
                token[:-4] + "AAAA",
            ]
            for candidate in bad:
                info = await http.get("/userinfo", headers={"Authorization": f"Bearer {candidate}"})
                assert info.status_code == 401 and 'error="invalid_token"' in info.headers["www-authenticate"]
                assert await introspect(http, client.client_id, secret, candidate) == {"active": False}
            assert (
                await http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
            ).status_code == 200
            clock.advance(env.services.settings.access_token_ttl + 1)
            expired = await http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
            assert expired.status_code == 401
            assert await introspect(http, client.client_id, secret, token) == {"active": False}


async def test_userinfo_methods_and_tokens_that_are_not_for_it(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        user, client, secret = await setup(env)
        machine, machine_secret = await env.register_client("Machine", grant_types=["client_credentials"])
        assert machine_secret
        async with env.client() as http:
            code = await get_code(env, http, client.client_id, user.email, scope="openid email")
            token = (await redeem(http, client.client_id, secret, code)).json()["access_token"]
            posted = await http.post("/userinfo", data={"access_token": token})
            assert posted.status_code == 200 and posted.json() == {
                "sub": user.id,
                "email": user.email,
                "email_verified": True,
            }
            both = await http.post(
                "/userinfo", data={"access_token": token}, headers={"Authorization": f"Bearer {token}"}
            )
            assert both.status_code == 400 and 'error="invalid_request"' in both.headers["www-authenticate"]
            missing = await http.get("/userinfo")
            assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
            api_only = (
                await http.post(
                    "/oauth/token",
                    data={"grant_type": "client_credentials", "resource": API},
                    headers=basic(machine.client_id, machine_secret),
                )
            ).json()["access_token"]
            refused = await http.get("/userinfo", headers={"Authorization": f"Bearer {api_only}"})
            assert (
                refused.status_code == 401 and 'error="invalid_token"' in refused.headers["www-authenticate"]
            )


async def test_an_id_token_or_a_jwt_of_another_type_is_not_an_access_token(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        user, client, secret = await setup(env)
        async with env.client() as http:
            code = await get_code(env, http, client.client_id, user.email, scope="openid email")
            tokens = (await redeem(http, client.client_id, secret, code)).json()
            # Signed by the same key, unexpired, from this issuer: only its type (RFC 9068 2.1 typ at+jwt,
            # RFC 8725 3.11) says it is not an access token.
            access_claims = json.loads(base64.urlsafe_b64decode(tokens["access_token"].split(".")[1] + "=="))
            signed_by_us, _ = await env.services.keys.sign(access_claims, typ="JWT")
            for candidate in (tokens["id_token"], signed_by_us):
                info = await http.get("/userinfo", headers={"Authorization": f"Bearer {candidate}"})
                assert info.status_code == 401 and 'error="invalid_token"' in info.headers["www-authenticate"]
                assert await introspect(http, client.client_id, secret, candidate) == {"active": False}
            assert (
                await http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
            ).status_code == 200
