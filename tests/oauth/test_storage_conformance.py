"""The authorization server's stores behave the same on SQLite and PostgreSQL (the ``database`` fixture).

Each test holds the SQL implementation to its protocol in ``tessera/oauth/stores.py``: the stores are typed
by the protocol, so only what the protocol promises is exercised (mypy checks that each ``Sql*`` class
satisfies it)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tessera.core.clock import FrozenClock
from tessera.core.errors import Conflict, ValidationFailed
from tessera.oauth.clients import SqlClientStore, build_client
from tessera.oauth.resources import SqlApiStore, build_api
from tessera.oauth.storage import (
    CodeRecord,
    RefreshRecord,
    SqlCodeStore,
    SqlConsentStore,
    SqlJtiStore,
    SqlRefreshTokenStore,
    SqlRevocationStore,
)
from tessera.oauth.stores import (
    ApiStore,
    ClientStore,
    CodeStore,
    ConsentStore,
    JtiStore,
    RefreshTokenStore,
    RevocationStore,
)
from tessera.storage.database import Database

NOW = datetime(2027, 1, 15, 12, 0, tzinfo=UTC)


async def test_clients_round_trip_with_full_metadata(database: Database, clock: FrozenClock) -> None:
    store: ClientStore = SqlClientStore(database, clock)
    made = build_client(
        NOW,
        client_name="Agent ✓",
        redirect_uris=["https://app.example/cb", "http://127.0.0.1/cb"],
        scope="openid  profile",
        metadata={
            "logo_uri": "https://app.example/logo.png",
            "contacts": ["ops@example.com"],
            "backchannel_logout_uri": "https://app.example/logout",
        },
    )
    assert made.client_secret and len(made.client_secret) >= 43
    async with database.transaction() as conn:
        await store.insert(made.client, conn=conn)
    loaded = await store.get(made.client.client_id)
    assert loaded == made.client
    assert loaded.scope == "openid profile"
    assert loaded.metadata["contacts"] == ["ops@example.com"]
    assert loaded.secret_matches(made.client_secret, NOW) and not loaded.secret_matches("guess", NOW)
    assert loaded.client_secret_hash != made.client_secret
    with pytest.raises(Conflict):
        async with database.transaction() as conn:
            await store.insert(made.client, conn=conn)
    async with database.transaction() as conn:
        await store.update(loaded.__class__(**{**loaded.__dict__, "client_name": "Renamed"}), conn=conn)
    assert (await store.get(made.client.client_id)).client_name == "Renamed"  # type: ignore[union-attr]
    assert [c.client_id for c in await store.list()] == [made.client.client_id]
    async with database.transaction() as conn:
        assert await store.delete(made.client.client_id, conn=conn)
    assert await store.get(made.client.client_id) is None


def test_client_metadata_validation() -> None:
    for bad in (
        {"client_name": ""},
        {"client_name": "x", "redirect_uris": ["https://a.example/cb#frag"]},
        {"client_name": "x", "redirect_uris": ["http://app.example/cb"]},
        {"client_name": "x", "redirect_uris": ["javascript:alert(1)"]},
        {"client_name": "x", "grant_types": ["authorization_code"]},
        {"client_name": "x", "is_public": True, "grant_types": ["client_credentials"]},
        {
            "client_name": "x",
            "token_endpoint_auth_method": "private_key_jwt",
            "grant_types": ["client_credentials"],
        },
        {"client_name": "x", "grant_types": ["password"]},
    ):
        with pytest.raises(ValidationFailed):
            build_client(NOW, **bad)
    native = build_client(NOW, client_name="n", redirect_uris=["http://127.0.0.1/cb"], is_public=True).client
    assert native.redirect_uri_allowed("http://127.0.0.1:61000/cb")
    assert not native.redirect_uri_allowed("http://127.0.0.1:61000/cb2")
    assert not native.redirect_uri_allowed("http://127.0.0.1:bad/cb")


async def test_apis(database: Database) -> None:
    store: ApiStore = SqlApiStore(database)
    api = build_api("https://api.example/", now=NOW, scopes={"read": "Read things", "write": ""})
    async with database.transaction() as conn:
        await store.insert(api, conn=conn)
    with pytest.raises(Conflict):
        async with database.transaction() as conn:
            await store.insert(build_api("https://api.example/", now=NOW), conn=conn)
    assert await store.get("https://api.example/") == api
    assert [a.identifier for a in await store.all()] == ["https://api.example/"]
    with pytest.raises(ValidationFailed):
        build_api("not a uri", now=NOW)
    with pytest.raises(ValidationFailed):
        build_api("https://api.example/", now=NOW, scopes=["bad scope"])


async def test_codes_are_consumed_once_even_concurrently(database: Database) -> None:
    codes: CodeStore = SqlCodeStore()
    record = CodeRecord(
        code_hash="h" * 64,
        grant_id="g" * 26,
        client_id="c",
        user_id="u",
        session_id="s",
        redirect_uri="https://app/cb",
        scope="openid",
        resources=["https://api/"],
        nonce="n",
        code_challenge="x" * 43,
        code_challenge_method="S256",
        auth_time=NOW,
        amr=["pwd"],
        acr=None,
        created_at=NOW,
        expires_at=NOW + timedelta(seconds=60),
    )
    async with database.transaction() as conn:
        await codes.insert(record, conn=conn)

    async def consume() -> bool:
        async with database.transaction() as conn:
            return await codes.consume(record.code_hash, NOW, conn=conn)

    results = await asyncio.gather(*(consume() for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    async with database.read() as conn:
        stored = await codes.get(record.code_hash, conn=conn)
    assert stored is not None and stored.consumed_at == NOW and stored.resources == ["https://api/"]
    async with database.transaction() as conn:
        await codes.purge(NOW + timedelta(days=1), conn=conn)
    async with database.read() as conn:
        assert await codes.get(record.code_hash, conn=conn) is None


async def test_refresh_families_and_revocations(database: Database) -> None:
    tokens: RefreshTokenStore = SqlRefreshTokenStore()
    revocations: RevocationStore = SqlRevocationStore(database)

    def rt(n: int) -> RefreshRecord:
        return RefreshRecord(
            token_hash=f"{n}" * 64,
            grant_id="family-1",
            client_id="c",
            user_id="u",
            session_id=None,
            scope="openid offline_access",
            resources=[],
            auth_time=NOW,
            amr=None,
            acr=None,
            created_at=NOW,
            expires_at=NOW + timedelta(days=1),
        )

    async with database.transaction() as conn:
        for n in (1, 2, 3):
            await tokens.insert(rt(n), conn=conn)
        assert await tokens.mark_rotated("1" * 64, NOW, conn=conn)
        assert not await tokens.mark_rotated("1" * 64, NOW, conn=conn)
        assert await tokens.revoke_family("family-1", NOW, conn=conn) == 3
        assert not await tokens.mark_rotated("2" * 64, NOW, conn=conn)
        await revocations.add("grant:family-1", "test", NOW, NOW + timedelta(hours=1), conn=conn)
        await revocations.add("grant:family-1", "again", NOW, NOW + timedelta(hours=1), conn=conn)
    assert await revocations.any_revoked(["jti:x", "grant:family-1"])
    assert not await revocations.any_revoked(["jti:x"])
    async with database.transaction() as conn:
        await revocations.purge(NOW + timedelta(hours=2), conn=conn)
    assert not await revocations.any_revoked(["grant:family-1"])


async def test_jtis_are_single_use_until_they_expire(database: Database) -> None:
    jtis: JtiStore = SqlJtiStore(database)
    exp = NOW + timedelta(seconds=60)
    results = await asyncio.gather(*(jtis.use("c", "j1", exp, NOW) for _ in range(4)))
    assert sorted(results) == [False, False, False, True]
    assert await jtis.use("other-client", "j1", exp, NOW)
    # After it expired, the same jti may be used again (its entry is gone).
    assert await jtis.use("c", "j1", exp + timedelta(seconds=60), exp + timedelta(seconds=1))


async def test_consents_accumulate(database: Database) -> None:
    consents: ConsentStore = SqlConsentStore()
    async with database.transaction() as conn:
        assert await consents.get("u", "c", conn=conn) is None
        await consents.grant("u", "c", {"openid"}, {"https://api/"}, NOW, conn=conn)
        merged = await consents.grant("u", "c", {"email"}, set(), NOW, conn=conn)
    assert merged.scopes == {"openid", "email"} and merged.resources == {"https://api/"}
    async with database.transaction() as conn:
        assert (await consents.get("u", "c", conn=conn)) == merged
        assert await consents.revoke("u", "c", conn=conn)
        assert await consents.get("u", "c", conn=conn) is None
