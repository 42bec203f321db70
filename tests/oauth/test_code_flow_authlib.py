"""Authlib's AsyncOAuth2Client completes code + PKCE through the real login and consent forms, validates the
ID token against the JWKS, refreshes, introspects and revokes."""

from __future__ import annotations

import time
from pathlib import Path

import httpx2
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidClaimError
from joserfc.jwk import KeySet

from tests.oauth.support import ISSUER, Browser, callback_params, environment

REDIRECT = "https://app.example/callback"
API = "https://calendar.example/api"


async def test_code_pkce_refresh_introspect_revoke(tmp_path: Path) -> None:
    async with environment(tmp_path) as env:
        user = await env.user()
        client, secret = await env.register_client(
            "Calendar <b>Agent</b>",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            scope="openid profile email offline_access calendar:read",
        )
        await env.register_api(API, {"calendar:read": "Read your calendar"})
        # Authlib 1.9 speaks httpx2 (a fork of httpx), so it needs that package's ASGI transport.
        transport = httpx2.ASGITransport(app=env.app)
        async with env.client() as http:
            discovery = (await http.get("/.well-known/openid-configuration")).json()
            assert discovery == (await http.get("/.well-known/oauth-authorization-server")).json()
            assert discovery["code_challenge_methods_supported"] == ["S256"]
            assert discovery["authorization_response_iss_parameter_supported"] is True
            jwks = KeySet.import_key_set((await http.get("/.well-known/jwks.json")).json())

        oauth = AsyncOAuth2Client(
            client_id=client.client_id,
            client_secret=secret,
            scope="openid profile email offline_access calendar:read",
            redirect_uri=REDIRECT,
            code_challenge_method="S256",
            transport=transport,
            token_endpoint_auth_method="client_secret_basic",
        )
        verifier = generate_token(48)
        nonce = generate_token(16)
        url, state = oauth.create_authorization_url(
            discovery["authorization_endpoint"], code_verifier=verifier, nonce=nonce, resource=API
        )
        async with env.client() as http:
            browser = Browser(http)
            consent_page = await browser.follow(await browser.get(url))
            login = consent_page
            assert 'autocomplete="username"' in login.text
            after_login = await browser.login(login, user.email)
            # The consent page: the client's name shown as text, the scopes explained.
            assert after_login.status_code == 200
            assert "Calendar &lt;b&gt;Agent&lt;/b&gt;" in after_login.text
            assert "<b>Agent</b>" not in after_login.text
            assert "Read your calendar" in after_login.text
            assert 'name="decision" value="allow"' in after_login.text
            callback = await browser.consent(after_login, "allow")
            params = callback_params(callback)
            assert params["state"] == state and params["iss"] == ISSUER

            # Consent is remembered: the same request again goes straight back with a code.
            again = await browser.follow(await browser.get(url))
            assert "code" in callback_params(again)

        token = await oauth.fetch_token(
            discovery["token_endpoint"],
            authorization_response=callback.headers["location"],
            code_verifier=verifier,
        )
        assert token["token_type"] == "Bearer" and token["refresh_token"] and token["id_token"]

        id_token = jwt.decode(token["id_token"], jwks)
        claims = id_token.claims
        # Authlib's own OpenID Connect checks of the verified token: iss, aud, exp, iat, nonce, at_hash, azp.
        CodeIDToken(
            claims,
            id_token.header,
            options={
                "iss": {"essential": True, "value": ISSUER},
                "aud": {"essential": True, "value": client.client_id},
            },
            params={"nonce": nonce, "client_id": client.client_id, "access_token": token["access_token"]},
        ).validate()
        for wrong in ({"nonce": "another nonce"}, {"nonce": nonce, "access_token": "another token"}):
            with pytest.raises(InvalidClaimError):
                CodeIDToken(claims, id_token.header, params=wrong).validate()
        assert claims["iss"] == ISSUER and claims["aud"] == client.client_id and claims["sub"] == user.id
        assert claims["nonce"] == nonce and claims["email"] == user.email
        assert abs(claims["auth_time"] - time.time()) < 60 and claims["sid"]
        from tessera.keys.keyring import half_hash

        assert claims["at_hash"] == half_hash(token["access_token"], id_token.header["alg"])

        access = jwt.decode(token["access_token"], jwks)
        assert access.header["typ"] == "at+jwt"
        assert API in access.claims["aud"] and access.claims["client_id"] == client.client_id
        for name in ("iss", "exp", "sub", "iat", "jti", "scope", "auth_time"):
            assert name in access.claims

        async with env.client() as http:
            info = await http.get("/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"})
            assert info.status_code == 200, info.text
            assert info.json() == {
                "sub": user.id,
                "email": user.email,
                "email_verified": True,
                "name": "Ada Lovelace",
                "updated_at": int(user.created_at.timestamp()),
            }

        refreshed = await oauth.refresh_token(
            discovery["token_endpoint"], refresh_token=token["refresh_token"]
        )
        assert refreshed["refresh_token"] != token["refresh_token"]

        introspected = await oauth.introspect_token(
            discovery["introspection_endpoint"], token=refreshed["access_token"]
        )
        body = introspected.json()
        assert body["active"] is True and body["sub"] == user.id and body["client_id"] == client.client_id

        revoked = await oauth.revoke_token(
            discovery["revocation_endpoint"],
            token=refreshed["refresh_token"],
            token_type_hint="refresh_token",
        )
        assert revoked.status_code == 200
        # Revoking the refresh token revoked the grant: its access tokens too (RFC 7009 2.1).
        for access_token in (refreshed["access_token"], token["access_token"]):
            after = await oauth.introspect_token(discovery["introspection_endpoint"], token=access_token)
            assert after.json() == {"active": False}
        async with env.client() as http:
            info = await http.get(
                "/userinfo", headers={"Authorization": f"Bearer {refreshed['access_token']}"}
            )
            assert info.status_code == 401 and "invalid_token" in info.headers["www-authenticate"]
        await oauth.aclose()

        events = {e.type for e in await env.services.audit.query(limit=100)}
        assert {"consent.given", "token.issued", "token.revoked"} <= events
