"""`tessera clients create`, `tessera apis create`, the discovery document, the audit buffer, the caches."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tessera.audit.log import AuditEvent, EventType
from tessera.cli.main import app as cli
from tessera.core.clock import FrozenClock
from tessera.oauth.audit_buffer import AuditBuffer
from tessera.oauth.clients import ClientCache, SqlClientStore, build_client
from tessera.services import Services
from tessera.storage.database import Database
from tests.oauth.support import ISSUER, environment, make_settings


def test_cli_creates_clients_and_apis_that_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESSERA_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'oauth.db'}")
    monkeypatch.setenv("TESSERA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TESSERA_MASTER_KEY", "k" * 43)
    runner = CliRunner()
    api = runner.invoke(
        cli,
        [
            "apis",
            "create",
            "https://orders.example/",
            "--scope",
            "orders:read",
            "--scope",
            "orders:write",
            "--json",
        ],
    )
    assert api.exit_code == 0, api.output
    assert json.loads(api.output)["scopes"] == ["orders:read", "orders:write"]
    described = runner.invoke(
        cli, ["apis", "create", "https://billing.example/", "--scope", "bills:pay=Pay your bills", "--json"]
    )
    assert json.loads(described.output)["scopes"] == ["bills:pay"]
    duplicate = runner.invoke(cli, ["apis", "create", "https://orders.example/"])
    assert duplicate.exit_code == 1 and "already exists" in duplicate.output
    machine = json.loads(
        runner.invoke(
            cli,
            [
                "clients",
                "create",
                "Order bot",
                "--grant-type",
                "client_credentials",
                "--scope",
                "orders:read",
                "--json",
            ],
        ).output
    )
    assert machine["client_id"] and len(machine["client_secret"]) >= 43
    public = runner.invoke(
        cli,
        ["clients", "create", "CLI app", "--public", "--redirect-uri", "http://127.0.0.1/callback", "--json"],
    )
    assert public.exit_code == 0 and "client_secret" not in json.loads(public.output)
    bad = runner.invoke(cli, ["clients", "create", "Bad", "--redirect-uri", "http://evil.example/cb"])
    assert bad.exit_code == 1
    text = runner.invoke(cli, ["clients", "create", "Plain"])
    assert text.exit_code == 0 and "client_secret" in text.output
    listed = json.loads(runner.invoke(cli, ["clients", "list", "--json"]).output)
    assert {c["client_name"] for c in listed} == {"Order bot", "CLI app", "Plain"}

    async def token() -> None:
        async with environment(tmp_path) as env, env.client() as http:
            billing = await env.services.oauth.api_store.get("https://billing.example/")
            assert billing is not None and billing.scopes == {"bills:pay": "Pay your bills"}
            auth = base64.b64encode(f"{machine['client_id']}:{machine['client_secret']}".encode()).decode()
            response = await http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials", "audience": "https://orders.example/"},
                headers={"Authorization": f"Basic {auth}"},
            )
            assert response.status_code == 200, response.text
            # The client may only have the scopes it was registered with.
            assert response.json()["scope"] == "orders:read"
            wider = await http.post(
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "audience": "https://orders.example/",
                    "scope": "orders:write",
                },
                headers={"Authorization": f"Basic {auth}"},
            )
            assert wider.json()["error"] == "invalid_scope"

    import asyncio

    asyncio.run(token())


async def test_discovery_document(tmp_path: Path) -> None:
    for cimd in (False, True):
        async with environment(tmp_path / str(cimd), client_id_metadata_document_supported=cimd) as env:
            await env.register_api("https://api.example/", {"things:read": ""})
            async with env.client() as http:
                oidc = await http.get("/.well-known/openid-configuration")
                oauth = await http.get("/.well-known/oauth-authorization-server")
            doc = oidc.json()
            assert doc == oauth.json() and doc["issuer"] == ISSUER
            for name, path in (
                ("authorization_endpoint", "/authorize"),
                ("token_endpoint", "/oauth/token"),
                ("userinfo_endpoint", "/userinfo"),
                ("jwks_uri", "/.well-known/jwks.json"),
                ("introspection_endpoint", "/oauth/introspect"),
                ("revocation_endpoint", "/oauth/revoke"),
            ):
                assert doc[name] == ISSUER + path
            assert doc["code_challenge_methods_supported"] == ["S256"]
            assert doc["authorization_response_iss_parameter_supported"] is True
            assert doc["client_id_metadata_document_supported"] is cimd
            assert {"authorization_code", "refresh_token", "client_credentials"} <= set(
                doc["grant_types_supported"]
            )
            assert {"client_secret_basic", "client_secret_post", "private_key_jwt", "none"} <= set(
                doc["token_endpoint_auth_methods_supported"]
            )
            assert doc["id_token_signing_alg_values_supported"] == ["ES256"]
            assert {"openid", "offline_access", "things:read"} <= set(doc["scopes_supported"])
            assert {"sub", "auth_time", "nonce", "email"} <= set(doc["claims_supported"])
            assert doc["response_types_supported"] == ["code"]


async def test_audit_buffer_batches_and_flushes_on_close(tmp_path: Path) -> None:
    services = Services(make_settings(tmp_path))
    from tessera.storage.migrate import upgrade

    await upgrade(services.db)
    buffer = AuditBuffer(services.db, services.clock, interval=60, batch=1000)
    for n in range(250):
        buffer.add(AuditEvent(EventType.TOKEN_ISSUED, client_id=f"c{n}", details={"n": n}))
    assert await services.audit.query(type="token.issued") == []  # nothing written yet
    await buffer.aclose()
    events = await services.audit.query(type="token.issued", limit=1000)
    assert len(events) == 250 and {e.details["n"] for e in events} == set(range(250))
    await services.aclose()


async def test_client_cache_sees_other_processes_within_its_ttl(database: Database) -> None:
    clock = FrozenClock(at=0)
    store = SqlClientStore(database, clock)
    cache = ClientCache(store, ttl=5, monotonic=clock.now)
    made = build_client(datetime.fromtimestamp(clock.now(), UTC), client_name="Later")
    assert await cache.get(made.client.client_id) is None
    async with database.transaction() as conn:  # another process registers it
        await store.insert(made.client, conn=conn)
    clock.advance(4.9)
    assert await cache.get(made.client.client_id) is None
    clock.advance(0.2)
    # Past the TTL: answered from memory once more while one background read refreshes the entry.
    assert await cache.get(made.client.client_id) is None
    await cache.settle()
    assert await cache.get(made.client.client_id) == made.client


async def test_purge_expired_keeps_what_still_matters(tmp_path: Path) -> None:
    import time as _time
    from datetime import timedelta

    from sqlalchemy import func, select

    from tessera.oauth.storage import oauth_revocations, oauth_used_jtis

    clock = FrozenClock(at=_time.time())
    async with environment(tmp_path, clock=clock) as env:
        server = env.services.oauth
        now = server.now()
        async with env.services.db.transaction() as conn:
            await server.revocations.add("jti:old", "t", now, now + timedelta(seconds=10), conn=conn)
            await server.revocations.add("jti:live", "t", now, now + timedelta(hours=2), conn=conn)
        await server.jtis.use("c", "old", now + timedelta(seconds=10), now)
        await server.jtis.use("c", "live", now + timedelta(hours=2), now)
        clock.advance(3600)
        await server.purge_expired()
        async with env.services.db.read() as conn:
            revocations = (await conn.execute(select(oauth_revocations.c.key))).scalars().all()
            jtis = (await conn.execute(select(func.count()).select_from(oauth_used_jtis))).scalar_one()
        assert revocations == ["jti:live"] and jtis == 1
