"""/fga is protected by Tessera access tokens for the API <issuer>/fga, scope by scope, with OpenFGA's error
codes; TESSERA_FGA_AUTH=off works only on loopback."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tessera.core.errors import TesseraError
from tessera.core.ids import new_id
from tessera.fga.http import api_identifier, register_api
from tessera.services import Services
from tessera.web.app import create_app
from tests.fga.server.conftest import ISSUER, model_json, secured_api, settings_for

AUDIENCE = f"{ISSUER}/fga"


async def token(
    services: Services, *, scope: str, aud: Any = AUDIENCE, typ: str = "at+jwt", **claims: Any
) -> str:
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "sub": "client-1",
        "client_id": "client-1",
        "aud": aud,
        "scope": scope,
        "iat": now,
        "exp": now + 300,
        "jti": new_id(),
        **claims,
    }
    signed, _ = await services.keys.sign(body, typ=typ)
    return signed


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def test_missing_and_bad_tokens_are_401_with_openfga_codes(
    secured: tuple[httpx.AsyncClient, Services],
) -> None:
    api, services = secured
    r = await api.get("/stores")
    assert r.status_code == 401
    assert r.json() == {"code": "bearer_token_missing", "message": "missing bearer token"}
    assert r.headers["www-authenticate"].startswith("Bearer")

    r = await api.get("/stores", headers=bearer("not-a-jwt"))
    assert r.status_code == 401 and r.json()["code"] == "auth_failed_invalid_bearer_token"
    assert 'error="invalid_token"' in r.headers["www-authenticate"]

    other_api = await token(services, scope="fga:read", aud=f"{ISSUER}/other")
    r = await api.get("/stores", headers=bearer(other_api))
    assert r.status_code == 401 and r.json()["code"] == "auth_failed_invalid_audience"

    foreign = await token(services, scope="fga:read", iss="https://evil.example")
    r = await api.get("/stores", headers=bearer(foreign))
    assert r.status_code == 401 and r.json()["code"] == "auth_failed_invalid_issuer"

    expired = await token(services, scope="fga:read", exp=int(time.time()) - 3600)
    r = await api.get("/stores", headers=bearer(expired))
    assert r.status_code == 401 and r.json()["code"] == "auth_failed_invalid_bearer_token"

    id_token_like = await token(services, scope="fga:read", typ="JWT")
    r = await api.get("/stores", headers=bearer(id_token_like))
    assert r.status_code == 401

    # A token signed by some other key with our kid and claims is refused too.
    import jwt as pyjwt
    from cryptography.hazmat.primitives.asymmetric import ec

    key = await services.keys.active()
    forged = pyjwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "scope": "fga:admin", "exp": int(time.time()) + 60},
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={"kid": key.kid, "typ": "at+jwt"},
    )
    r = await api.get("/stores", headers=bearer(forged))
    assert r.status_code == 401 and r.json()["code"] == "auth_failed_invalid_bearer_token"


async def test_scopes_per_route(secured: tuple[httpx.AsyncClient, Services]) -> None:
    api, services = secured
    reader = bearer(await token(services, scope="fga:read"))
    writer = bearer(await token(services, scope="fga:write"))
    admin = bearer(await token(services, scope="fga:admin"))

    r = await api.post("/stores", json={"name": "s"}, headers=reader)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
    assert 'scope="fga:admin"' in r.headers["www-authenticate"]
    r = await api.post("/stores", json={"name": "s"}, headers=admin)
    assert r.status_code == 201
    store_id = r.json()["id"]
    r = await api.post(f"/stores/{store_id}/authorization-models", json=model_json(), headers=writer)
    assert r.status_code == 403
    r = await api.post(f"/stores/{store_id}/authorization-models", json=model_json(), headers=admin)
    assert r.status_code == 201

    write = {"writes": {"tuple_keys": [{"user": "user:a", "relation": "owner", "object": "document:1"}]}}
    r = await api.post(f"/stores/{store_id}/write", json=write, headers=reader)
    assert r.status_code == 403
    r = await api.post(f"/stores/{store_id}/write", json=write, headers=writer)
    assert r.status_code == 200

    check = {"tuple_key": {"user": "user:a", "relation": "viewer", "object": "document:1"}}
    r = await api.post(f"/stores/{store_id}/check", json=check, headers=writer)
    assert r.status_code == 403
    r = await api.post(f"/stores/{store_id}/check", json=check, headers=reader)
    assert r.status_code == 200 and r.json()["allowed"] is True
    r = await api.post(f"/stores/{store_id}/check", json=check, headers=admin)  # admin implies read
    assert r.status_code == 200


async def test_auth_failure_comes_before_validation(secured: tuple[httpx.AsyncClient, Services]) -> None:
    api, _ = secured
    r = await api.post("/stores/not-a-ulid/check", content=b"{broken")
    assert r.status_code == 401 and r.json()["code"] == "bearer_token_missing"


def test_opt_out_is_refused_beyond_loopback(tmp_path: Path, sqlite_url: str) -> None:
    for host in ("0.0.0.0", "192.168.1.10", "::"):
        settings = settings_for(tmp_path, sqlite_url, auth=False).model_copy(update={"host": host})
        with pytest.raises(TesseraError) as err:
            create_app(settings)
        assert err.value.code == "fga_auth_off_refused"
    for host in ("127.0.0.1", "::1", "localhost"):
        settings = settings_for(tmp_path, sqlite_url, auth=False).model_copy(update={"host": host})
        assert create_app(settings) is not None
    # With authentication on, any host is fine.
    assert create_app(settings_for(tmp_path, sqlite_url, auth=True).model_copy(update={"host": "0.0.0.0"}))


async def test_the_api_is_registered_once_with_its_scopes(
    secured: tuple[httpx.AsyncClient, Services],
) -> None:
    _, services = secured
    assert await register_api(services) is True
    assert await register_api(services) is False
    api = await services.oauth.api_store.get(api_identifier(ISSUER))
    assert api is not None
    assert set(api.scopes) == {"fga:read", "fga:write", "fga:admin"}


async def test_a_revoked_token_is_refused(secured: tuple[httpx.AsyncClient, Services]) -> None:
    from datetime import UTC, datetime, timedelta

    import jwt as pyjwt

    api, services = secured
    value = await token(services, scope="fga:read")
    assert (await api.get("/stores", headers=bearer(value))).status_code == 200
    jti = pyjwt.decode(value, options={"verify_signature": False})["jti"]
    now = datetime.now(UTC)
    async with services.db.transaction() as conn:
        await services.oauth.revocations.add(f"jti:{jti}", "test", now, now + timedelta(hours=1), conn=conn)
    r = await api.get("/stores", headers=bearer(value))
    assert r.status_code == 401 and r.json()["code"] == "auth_failed_invalid_bearer_token"


async def test_tokens_of_a_deleted_client_are_refused(secured: tuple[httpx.AsyncClient, Services]) -> None:
    from tessera.admin import operations

    api, services = secured
    live = await token(services, scope="fga:read")
    assert (await api.get("/stores", headers=bearer(live))).status_code == 200
    assert await operations.delete_client(services, "client-1")
    # Still well signed and unexpired, but its client is gone: it speaks for no one.
    r = await api.get("/stores", headers=bearer(live))
    assert r.status_code == 401 and r.json()["code"] == "auth_failed_invalid_bearer_token"


@pytest.fixture
async def secured_on(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    """``secured`` on each backend (SQLite and PostgreSQL)."""
    async with secured_api(tmp_path, database_url) as api:
        yield api


async def test_revoked_disabled_and_deleted_parties_are_refused_at_once(
    secured_on: tuple[httpx.AsyncClient, Services],
) -> None:
    """Each change is made by another process (its own ``Database`` on the same URL) and refuses the very next
    request: the reads behind a bearer token are authoritative, never a cache."""
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import text

    from tessera.oauth.clients import SqlClientStore
    from tessera.oauth.storage import SqlRevocationStore
    from tessera.storage.database import Database

    api, services = secured_on
    user = await services.users.create("grace@example.com")
    clients_token = bearer(await token(services, scope="fga:read"))
    users_token = bearer(await token(services, scope="fga:read", sub=user.id, gid="grant-1"))
    other_users_token = bearer(await token(services, scope="fga:read", sub=user.id, gid="grant-2"))

    async def status(headers: dict[str, str]) -> tuple[int, str | None]:
        r = await api.get("/stores", headers=headers)
        return r.status_code, (None if r.status_code == 200 else r.json()["code"])

    refused = (401, "auth_failed_invalid_bearer_token")
    for headers in (clients_token, users_token, other_users_token):
        assert await status(headers) == (200, None)

    other = Database(services.db.url)
    now = datetime.now(UTC)
    later = now + timedelta(hours=1)
    try:
        # Revoked by grant: that grant's token only.
        async with other.transaction() as conn:
            await SqlRevocationStore(other).add("grant:grant-1", "t", now, later, conn=conn)
        assert await status(users_token) == refused
        assert await status(other_users_token) == (200, None)

        # The user disabled, enabled, deleted.
        async with other.transaction() as conn:
            await conn.execute(text("UPDATE users SET disabled = true WHERE id = :id"), {"id": user.id})
        assert await status(other_users_token) == refused
        assert await status(clients_token) == (200, None)
        async with other.transaction() as conn:
            await conn.execute(text("UPDATE users SET disabled = false WHERE id = :id"), {"id": user.id})
        assert await status(other_users_token) == (200, None)
        async with other.transaction() as conn:
            await conn.execute(text("DELETE FROM users WHERE id = :id"), {"id": user.id})
        assert await status(other_users_token) == refused

        # The client disabled (every token it holds), enabled again, then revoked by jti.
        client = await services.oauth.client_store.get("client-1")
        assert client is not None
        clock = services.clock
        async with other.transaction() as conn:
            await SqlClientStore(other, clock).update(replace(client, disabled=True), conn=conn)
        assert await status(clients_token) == refused
        async with other.transaction() as conn:
            await SqlClientStore(other, clock).update(replace(client, disabled=False), conn=conn)
        assert await status(clients_token) == (200, None)
        jti = json.loads(base64.urlsafe_b64decode(clients_token["Authorization"].split(".")[1] + "=="))["jti"]
        async with other.transaction() as conn:
            await SqlRevocationStore(other).add(f"jti:{jti}", "t", now, later, conn=conn)
        assert await status(clients_token) == refused
        fresh = bearer(await token(services, scope="fga:read"))
        assert await status(fresh) == (200, None)

        # The client deleted.
        async with other.transaction() as conn:
            await SqlClientStore(other, clock).delete("client-1", conn=conn)
        assert await status(fresh) == refused
    finally:
        await other.dispose()
