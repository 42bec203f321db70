"""The one-statement read behind every bearer token (``SqlTokenStates``) and
``OAuthServer.check_access_token`` on SQLite and PostgreSQL: revocation by jti and by grant, the client and
the user, each seen at once when another process (here: another ``Database`` on the same URL, with its own
connections) changes it."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tessera.admin import operations
from tessera.core.clock import FrozenClock
from tessera.core.errors import InvalidToken
from tessera.core.ids import new_id
from tessera.oauth.clients import SqlClientStore, build_client
from tessera.oauth.storage import SqlRevocationStore, SqlTokenStates, TokenState
from tessera.services import Services
from tessera.settings import Settings
from tessera.storage.database import Database
from tessera.storage.migrate import upgrade

ISSUER = "http://127.0.0.1:8998"
AT = datetime(2027, 1, 15, tzinfo=UTC)


async def revoke(db: Database, key: str) -> None:
    async with db.transaction() as conn:
        await SqlRevocationStore(db).add(key, "test", AT, AT + timedelta(hours=1), conn=conn)


async def test_the_state_of_revocations_client_and_user(database: Database, clock: FrozenClock) -> None:
    states = SqlTokenStates(database)
    # Nothing exists yet: no record, no client, no user.
    assert await states.read(["jti:a", "grant:g"], "c1", "u1") == TokenState(False, None, None)

    made = build_client(AT, client_name="c", grant_types=["client_credentials"], client_id="c1")
    async with database.transaction() as conn:
        await SqlClientStore(database, clock).insert(made.client, conn=conn)
        await conn.execute(
            text(
                "INSERT INTO users (id, email, email_verified, created_at, updated_at, disabled) "
                "VALUES ('u1', 'u1@example.com', false, :at, :at, false)"
            ),
            {"at": AT},
        )
    assert await states.read(["jti:a", "grant:g"], "c1", "u1") == TokenState(False, False, False)

    # Another process (its own engine and connections) changes each fact: the next read sees it.
    other = Database(database.url)
    try:
        await revoke(other, "grant:g")
        assert await states.read(["jti:a", "grant:g"], "c1", "u1") == TokenState(True, False, False)
        assert (await states.read(["jti:a"], "c1", "u1")).revoked is False
        await revoke(other, "jti:a")
        assert (await states.read(["jti:a"], "c1", "u1")).revoked is True

        async with other.transaction() as conn:
            await SqlClientStore(other, clock).update(replace(made.client, disabled=True), conn=conn)
        assert (await states.read([], "c1", None)).client_disabled is True
        async with other.transaction() as conn:
            await conn.execute(text("UPDATE users SET disabled = true WHERE id = 'u1'"))
        assert (await states.read([], None, "u1")).user_disabled is True
        async with other.transaction() as conn:
            await conn.execute(text("DELETE FROM users WHERE id = 'u1'"))
            await SqlClientStore(other, clock).delete("c1", conn=conn)
        assert await states.read(["jti:z"], "c1", "u1") == TokenState(False, None, None)
    finally:
        await other.dispose()

    # What is not asked about is not looked up.
    async with database.transaction() as conn:
        await SqlClientStore(database, clock).insert(replace(made.client, disabled=True), conn=conn)
    assert await states.read([], None, None) == TokenState(False, None, None)
    assert (await states.read([], "c1", None)).client_disabled is True


async def test_a_revocation_from_another_process_is_seen_at_once(database: Database) -> None:
    revocations = SqlRevocationStore(database)
    assert not await revocations.any_revoked(["jti:b", "grant:h"])  # opens the SQLite hot connection
    other = Database(database.url)
    try:
        await revoke(other, "grant:h")
    finally:
        await other.dispose()
    assert await revocations.any_revoked(["jti:b", "grant:h"])
    assert not await revocations.any_revoked(["jti:b"])


# --- OAuthServer.check_access_token: every check, through the one read ---------------------------------


@pytest.fixture
async def services(tmp_path: Path, database_url: str) -> AsyncIterator[Services]:
    settings = Settings(
        master_key=base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="),
        issuer=ISSUER,
        database_url=database_url,
        data_dir=tmp_path,
    )
    made = Services(settings)
    await upgrade(made.db)
    try:
        yield made
    finally:
        await made.aclose()


async def sign(services: Services, **claims: Any) -> tuple[str, dict[str, Any]]:
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "sub": "robot",
        "client_id": "robot",
        "aud": f"{ISSUER}/api",
        "iat": now,
        "exp": now + 300,
        "jti": new_id(),
        **claims,
    }
    token, _ = await services.keys.sign(body, typ=claims.pop("typ", "at+jwt"))
    return token, body


async def test_check_access_token_keeps_every_check(services: Services) -> None:
    oauth = services.oauth
    await operations.create_client(
        services, source="test", client_id="robot", client_name="r", grant_types=["client_credentials"]
    )
    user = await services.users.create("ada@example.com")

    # The client's own token, and a user's token of a grant: valid, parties active.
    own, _ = await sign(services)
    assert (await oauth.check_access_token(own))[1] is True
    users_token, users_claims = await sign(services, sub=user.id, gid="grant-1")
    claims, active = await oauth.check_access_token(users_token)
    assert active is True and claims["jti"] == users_claims["jti"]

    # What the signature, type, issuer and expiry checks refuse is still refused.
    for bad in (
        (await sign(services, typ="JWT"))[0],
        (await sign(services, iss="https://evil.example"))[0],
        (await sign(services, exp=int(time.time()) - 10))[0],
        users_token[:-4] + ("AAAA" if not users_token.endswith("AAAA") else "BBBB"),
    ):
        with pytest.raises(InvalidToken):
            await oauth.check_access_token(bad)

    # The user disabled, then deleted: a token of the user's grant no longer speaks for anyone.
    await services.users.set_disabled(user.id, True)
    assert (await oauth.check_access_token(users_token))[1] is False
    assert await oauth.token_parties_active(users_claims) is False
    with pytest.raises(InvalidToken):
        await oauth.verify_live_access_token(users_token)
    await services.users.set_disabled(user.id, False)
    assert (await oauth.check_access_token(users_token))[1] is True
    async with services.db.transaction() as conn:
        await conn.execute(text("DELETE FROM users WHERE id = :id"), {"id": user.id})
    assert (await oauth.check_access_token(users_token))[1] is False
    # A subject Tessera has no account for, outside a user grant, is judged by the client alone.
    stranger, stranger_claims = await sign(services, sub="someone-else")
    assert (await oauth.check_access_token(stranger))[1] is True

    # Revoked by grant, then by jti: refused outright.
    revoked_grant, _ = await sign(services, gid="grant-2")
    assert (await oauth.check_access_token(revoked_grant))[1] is True
    await revoke(services.db, "grant:grant-2")
    with pytest.raises(InvalidToken):
        await oauth.check_access_token(revoked_grant)
    await revoke(services.db, f"jti:{stranger_claims['jti']}")
    with pytest.raises(InvalidToken):
        await oauth.check_access_token(stranger)

    # The client disabled, then deleted: its tokens are not live (still well signed and unrevoked).
    client = await oauth.client_store.get("robot")
    assert client is not None
    async with services.db.transaction() as conn:
        await oauth.client_store.update(replace(client, disabled=True), conn=conn)
    assert (await oauth.check_access_token(own))[1] is False
    with pytest.raises(InvalidToken):
        await oauth.verify_live_access_token(own)
    async with services.db.transaction() as conn:
        await oauth.client_store.update(replace(client, disabled=False), conn=conn)
    assert (await oauth.verify_live_access_token(own))["client_id"] == "robot"
    assert await operations.delete_client(services, "robot")
    assert (await oauth.check_access_token(own))[1] is False
    assert await oauth.token_parties_active({"client_id": "robot", "sub": "robot"}) is False
