"""Dynamic client registration (RFC 7591) and management (RFC 7592) over the real app, with hostile input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tessera.core.clock import FrozenClock
from tessera.oauth.clients import oauth_clients
from tessera.oauth.registration import oauth_initial_access_tokens
from tests.oauth.support import ISSUER, environment

APP = {
    "client_name": "Notes agent",
    "redirect_uris": ["https://notes.example/callback"],
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "client_secret_basic",
    "scope": "openid profile",
}


async def count_clients(env: Any) -> int:
    async with env.services.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(oauth_clients))).scalar_one())


async def test_register_read_update_delete(tmp_path: Path) -> None:
    async with environment(tmp_path) as env, env.client() as http:
        discovery = (await http.get("/.well-known/openid-configuration")).json()
        assert discovery["registration_endpoint"] == f"{ISSUER}/oidc/register"

        created = await http.post("/oidc/register", json={**APP, "unknown_field": "ignored"})
        assert created.status_code == 201, created.text
        assert created.headers["cache-control"] == "no-store"
        body = created.json()
        client_id, secret, rat = body["client_id"], body["client_secret"], body["registration_access_token"]
        assert body["client_secret_expires_at"] == 0
        assert body["registration_client_uri"] == f"{ISSUER}/oidc/register/{client_id}"
        assert body["redirect_uris"] == APP["redirect_uris"]
        assert "unknown_field" not in body and isinstance(body["client_id_issued_at"], int)

        # Stored hashed: neither the secret nor the registration access token is in the row.
        stored = await env.services.oauth.client_store.get(client_id)
        assert stored is not None and stored.source == "dynamic"
        assert rat not in json.dumps(stored.metadata) and stored.registration_access_token_hash != rat
        assert stored.registration_access_token_hash is not None

        # The new client works at the token endpoint with its secret (client_credentials is not granted).
        token = await http.post(
            "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
        )
        assert token.json()["error"] == "unauthorized_client"

        bearer = {"Authorization": f"Bearer {rat}"}
        read = await http.get(f"/oidc/register/{client_id}", headers=bearer)
        assert read.status_code == 200 and read.json()["client_name"] == "Notes agent"
        assert "client_secret" not in read.json() and "registration_access_token" not in read.json()

        update = {
            **APP,
            "client_id": client_id,
            "client_name": "Notes agent 2",
            "redirect_uris": ["https://notes.example/cb2"],
        }
        updated = await http.put(f"/oidc/register/{client_id}", json=update, headers=bearer)
        assert updated.status_code == 200, updated.text
        assert updated.json()["redirect_uris"] == ["https://notes.example/cb2"]
        assert (await env.services.oauth.clients.get(client_id)).client_name == "Notes agent 2"  # type: ignore[union-attr]
        # The secret survives an update.
        stored = await env.services.oauth.client_store.get(client_id)
        assert stored is not None and stored.client_secret_hash is not None

        deleted = await http.delete(f"/oidc/register/{client_id}", headers=bearer)
        assert deleted.status_code == 204
        assert await env.services.oauth.client_store.get(client_id) is None
        # Reusing the registration access token after the delete: 401, nothing there.
        again = await http.get(f"/oidc/register/{client_id}", headers=bearer)
        assert again.status_code == 401 and again.json()["error"] == "invalid_token"
        assert (await http.delete(f"/oidc/register/{client_id}", headers=bearer)).status_code == 401


async def test_public_client_registration_has_no_secret(tmp_path: Path) -> None:
    async with environment(tmp_path) as env, env.client() as http:
        response = await http.post(
            "/oidc/register",
            json={
                "client_name": "CLI",
                "redirect_uris": ["http://127.0.0.1/callback", "com.example.cli:/cb"],
                "token_endpoint_auth_method": "none",
            },
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert "client_secret" not in body and body["token_endpoint_auth_method"] == "none"
        assert body["grant_types"] == ["authorization_code"]


async def test_wrong_registration_access_tokens(tmp_path: Path) -> None:
    async with environment(tmp_path) as env, env.client() as http:
        first = (await http.post("/oidc/register", json=APP)).json()
        second = (await http.post("/oidc/register", json=APP)).json()
        target = f"/oidc/register/{first['client_id']}"
        for headers in (
            {},
            {"Authorization": "Bearer "},
            {"Authorization": f"Bearer {second['registration_access_token']}"},  # another client's token
            {"Authorization": f"Bearer {first['registration_access_token']}x"},
            {"Authorization": f"Basic {first['registration_access_token']}"},
        ):
            for method in ("GET", "PUT", "DELETE"):
                response = await http.request(method, target, headers=headers, json={**APP, "client_id": "x"})
                assert response.status_code in (400, 401), (method, headers, response.text)
                assert response.json()["error"] in ("invalid_token", "invalid_request")
        assert await env.services.oauth.client_store.get(first["client_id"]) is not None
        # A client created by an admin has no registration access token: RFC 7592 cannot touch it.
        admin_client, _ = await env.register_client("Admin app", redirect_uris=["https://a.example/cb"])
        response = await http.get(
            f"/oidc/register/{admin_client.client_id}",
            headers={"Authorization": f"Bearer {first['registration_access_token']}"},
        )
        assert response.status_code == 401
        # An unknown client answers exactly like a wrong token.
        unknown = await http.get("/oidc/register/nope", headers={"Authorization": "Bearer abc"})
        assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_token"


async def test_update_rules(tmp_path: Path) -> None:
    async with environment(tmp_path) as env, env.client() as http:
        made = (await http.post("/oidc/register", json=APP)).json()
        bearer = {"Authorization": f"Bearer {made['registration_access_token']}"}
        target = f"/oidc/register/{made['client_id']}"
        cases = [
            {**APP},  # no client_id
            {**APP, "client_id": "someone-else"},
            {**APP, "client_id": made["client_id"], "client_secret": "wrong"},
            {**APP, "client_id": made["client_id"], "registration_access_token": "x"},
            {**APP, "client_id": made["client_id"], "redirect_uris": ["https://x.example/cb#frag"]},
        ]
        for case in cases:
            response = await http.put(target, json=case, headers=bearer)
            assert response.status_code == 400, (case, response.text)
            assert response.json()["error"] in ("invalid_client_metadata", "invalid_redirect_uri")
        unchanged = await env.services.oauth.client_store.get(made["client_id"])
        assert unchanged is not None and list(unchanged.redirect_uris) == APP["redirect_uris"]


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ({"redirect_uris": ["https://a.example/cb#fragment"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://evil.example/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["data:text/html,hi"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["/relative"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://user:pw@a.example/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["com.example.app:/cb"]}, "invalid_redirect_uri"),  # private scheme, confidential
        ({"redirect_uris": []}, "invalid_redirect_uri"),
        ({"redirect_uris": "https://a.example/cb"}, "invalid_client_metadata"),
        ({"redirect_uris": [42]}, "invalid_client_metadata"),
        ({"redirect_uris": ["https://a.example/" + "x" * 3000]}, "invalid_redirect_uri"),
        ({"token_endpoint_auth_method": "client_secret_jwt"}, "invalid_client_metadata"),
        ({"grant_types": ["implicit"]}, "invalid_client_metadata"),
        ({"grant_types": ["password"]}, "invalid_client_metadata"),
        ({"response_types": ["token"]}, "invalid_client_metadata"),
        ({"grant_types": ["client_credentials"]}, "invalid_client_metadata"),  # code without response_types
        (
            {
                "token_endpoint_auth_method": "none",
                "grant_types": ["client_credentials"],
                "response_types": [],
            },
            "invalid_client_metadata",
        ),
        ({"client_name": ""}, "invalid_client_metadata"),
        ({"client_name": "x" * 513}, "invalid_client_metadata"),
        ({"client_name": ["list"]}, "invalid_client_metadata"),
        ({"scope": 'openid "quoted"'}, "invalid_client_metadata"),
        ({"logo_uri": "javascript:alert(1)"}, "invalid_client_metadata"),
        ({"client_uri": "http://plain.example/"}, "invalid_client_metadata"),
        ({"jwks": {"keys": []}, "jwks_uri": "https://a.example/jwks"}, "invalid_client_metadata"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata"),
        ({"post_logout_redirect_uris": ["https://a.example/out#f"]}, "invalid_client_metadata"),
        ({"backchannel_logout_uri": "ftp://a.example/bc"}, "invalid_client_metadata"),
        ({"backchannel_logout_session_required": "yes"}, "invalid_client_metadata"),
        ({"contacts": "admin@a.example"}, "invalid_client_metadata"),
        ({"contacts": ["a@b.example"] * 11}, "invalid_client_metadata"),
        ({"redirect_uris": [f"https://a.example/cb{i}" for i in range(21)]}, "invalid_client_metadata"),
        ({"grant_types": ["authorization_code", "authorization_code"]}, "invalid_client_metadata"),
        (
            {"jwks_uri": "https://a.example/jwks#k", "token_endpoint_auth_method": "private_key_jwt"},
            "invalid_client_metadata",
        ),
        ({"redirect_uris": ["https://a.example/\x00cb"]}, "invalid_redirect_uri"),
    ],
)
async def test_bad_metadata_is_refused_and_stores_nothing(
    tmp_path: Path, metadata: dict[str, Any], error: str
) -> None:
    async with environment(tmp_path) as env, env.client() as http:
        response = await http.post("/oidc/register", json={**APP, **metadata})
        assert response.status_code == 400, response.text
        assert response.json()["error"] == error
        assert await count_clients(env) == 0


async def test_bodies_that_are_not_metadata(tmp_path: Path) -> None:
    async with environment(tmp_path) as env, env.client() as http:
        for content, ctype in (
            (b"[1,2]", "application/json"),
            (b"{not json", "application/json"),
            (b"client_name=x", "application/x-www-form-urlencoded"),
            (json.dumps({**APP, "software_id": "x" * 20000}).encode(), "application/json"),
        ):
            response = await http.post("/oidc/register", content=content, headers={"content-type": ctype})
            assert response.status_code == 400 and response.json()["error"] == "invalid_client_metadata"
        # Past the server-wide body limit: refused before it is read.
        huge = await http.post(
            "/oidc/register",
            content=b"{" + b" " * 200_000 + b"}",
            headers={"content-type": "application/json"},
        )
        assert huge.status_code == 413
        assert await count_clients(env) == 0


async def test_privileged_fields_cannot_be_self_assigned(tmp_path: Path) -> None:
    async with environment(tmp_path) as env, env.client() as http:
        response = await http.post(
            "/oidc/register",
            json={
                **APP,
                "first_party": True,
                "tessera_refresh_without_offline_access": True,
                "client_id": "chosen-id",
                "source": "cli",
            },
        )
        body = response.json()
        assert response.status_code == 201 and body["client_id"] != "chosen-id"
        client = await env.services.oauth.client_store.get(body["client_id"])
        assert client is not None and not client.first_party and client.source == "dynamic"
        assert not client.issues_refresh_without_offline_access


async def test_markup_in_client_name_is_data_and_escaped(tmp_path: Path) -> None:
    async with environment(tmp_path) as env, env.client() as http:
        name = '<script>alert("x")</script><b>Evil</b>'
        made = (
            await http.post(
                "/oidc/register",
                json={
                    **APP,
                    "client_name": name,
                    "token_endpoint_auth_method": "none",
                    "redirect_uris": ["http://127.0.0.1:9999/cb"],
                },
            )
        ).json()
        assert made["client_name"] == name  # stored as given
        await env.user()
        page = await http.get(
            "/authorize",
            params={
                "client_id": made["client_id"],
                "response_type": "code",
                "scope": "openid",
                "redirect_uri": "http://127.0.0.1:9999/cb",
                "code_challenge": "x" * 43,
                "code_challenge_method": "S256",
            },
        )
        # Signed out: the login redirect. Sign in and look at the consent page.
        from tests.oauth.support import Browser

        browser = Browser(http)
        consent = await browser.follow(page)
        consent = await browser.login(consent, "ada@example.com")
        assert consent.status_code == 200
        assert "<script>alert" not in consent.text and "&lt;script&gt;" in consent.text


async def test_policy_off_and_token(tmp_path: Path) -> None:
    async with environment(tmp_path / "off", registration="off") as env, env.client() as http:
        assert "registration_endpoint" not in (await http.get("/.well-known/openid-configuration")).json()
        response = await http.post("/oidc/register", json=APP)
        assert response.status_code == 403 and response.json()["error"] == "access_denied"
        assert await count_clients(env) == 0

    async with environment(tmp_path / "token", registration="token") as env, env.client() as http:
        missing = await http.post("/oidc/register", json=APP)
        assert missing.status_code == 401 and missing.json()["error"] == "invalid_token"
        assert "Bearer" in missing.headers["www-authenticate"]
        wrong = await http.post("/oidc/register", json=APP, headers={"Authorization": "Bearer guess"})
        assert wrong.status_code == 401
        made = await env.services.oauth.registrar.create_initial_token(uses=1)
        headers = {"Authorization": f"Bearer {made.token}"}
        # A bad registration does not spend the token.
        bad = await http.post(
            "/oidc/register", json={**APP, "redirect_uris": ["http://x.example/"]}, headers=headers
        )
        assert bad.status_code == 400
        ok = await http.post("/oidc/register", json=APP, headers=headers)
        assert ok.status_code == 201, ok.text
        reused = await http.post("/oidc/register", json=APP, headers=headers)
        assert reused.status_code == 401 and reused.json()["error"] == "invalid_token"
        assert await count_clients(env) == 1
        async with env.services.db.read() as conn:
            rows = (await conn.execute(select(oauth_initial_access_tokens))).all()
        assert all(made.token not in str(tuple(row)) for row in rows)


async def test_initial_tokens_expire(tmp_path: Path) -> None:
    clock = FrozenClock(1_800_000_000)
    async with environment(tmp_path, clock=clock, registration="token") as env, env.client() as http:
        made = await env.services.oauth.registrar.create_initial_token(uses=5, ttl_seconds=600)
        headers = {"Authorization": f"Bearer {made.token}"}
        assert (await http.post("/oidc/register", json=APP, headers=headers)).status_code == 201
        clock.advance(601)
        assert (await http.post("/oidc/register", json=APP, headers=headers)).status_code == 401


async def test_registration_is_rate_limited_per_ip(tmp_path: Path) -> None:
    async with environment(tmp_path, registration_rate_limit=3) as env, env.client() as http:
        statuses = [(await http.post("/oidc/register", json=APP)).status_code for _ in range(5)]
        assert statuses[:3] == [201, 201, 201]
        assert statuses[3:] == [429, 429]
        limited = await http.post("/oidc/register", json=APP)
        assert limited.json()["error"] == "too_many_requests" and "retry-after" in limited.headers
        assert await count_clients(env) == 3
