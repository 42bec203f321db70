"""Signing keys: sealed at rest, published in the JWKS, rotated, retired after their tokens expire, and
rotation by another process is noticed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select
from typer.testing import CliRunner

from tessera.cli.main import app as cli
from tessera.core.clock import FrozenClock
from tessera.core.sealing import Sealer
from tessera.keys.keyring import KeyError_, KeyRing
from tessera.keys.store import signing_keys
from tessera.settings import Settings
from tessera.storage.database import Database

MASTER = "m" * 43


def ring(database: Database, clock: FrozenClock, **settings: object) -> KeyRing:
    values: dict[str, object] = {"issuer": "http://t.example", "master_key": MASTER, "cache_ttl": 5}
    values.update(settings)
    return KeyRing(database, Sealer(MASTER), clock, Settings(**values))  # type: ignore[arg-type]


async def test_first_key_is_es256_sealed_and_published(database: Database, clock: FrozenClock) -> None:
    keys = ring(database, clock)
    token, key = await keys.sign({"sub": "x", "iat": int(clock.now())}, typ="at+jwt")
    assert key.alg == "ES256"
    jwks = await keys.jwks()
    assert [k["kid"] for k in jwks["keys"]] == [key.kid]
    public = jwks["keys"][0]
    assert public["alg"] == "ES256" and public["use"] == "sig" and "d" not in public
    decoded = jwt.decode(token, KeySet.import_key_set(jwks))
    assert decoded.header == {"alg": "ES256", "typ": "at+jwt", "kid": key.kid}
    async with database.read() as conn:
        row = (await conn.execute(select(signing_keys))).mappings().one()
    assert b"PRIVATE KEY" not in row["private_key"]
    # The sealed key is bound to its kid: copied into another row it does not open.
    with pytest.raises(Exception):  # noqa: B017 - cryptography's InvalidTag
        Sealer(MASTER).open(row["private_key"], "signing_keys.private_key:another-kid")
    assert b"PRIVATE KEY" in Sealer(MASTER).open(row["private_key"], f"signing_keys.private_key:{key.kid}")


async def test_rotation_keeps_retired_keys_until_their_tokens_expire(
    database: Database, clock: FrozenClock
) -> None:
    keys = ring(database, clock, access_token_ttl=600, id_token_ttl=300)
    old_token, old = await keys.sign({"sub": "a"})
    new = await keys.rotate()
    assert (await keys.active()).kid == new.kid != old.kid
    assert {k["kid"] for k in (await keys.jwks())["keys"]} == {old.kid, new.kid}
    header, _claims = await keys.verify(old_token)
    assert header["kid"] == old.kid
    clock.advance(599)
    assert {k["kid"] for k in (await keys.jwks())["keys"]} == {old.kid, new.kid}
    clock.advance(2)  # retired_at + the longest token lifetime has passed
    assert {k["kid"] for k in (await keys.jwks())["keys"]} == {new.kid}
    with pytest.raises(KeyError_):
        await keys.verify(old_token)


async def test_rotation_in_another_process_is_noticed(database: Database, clock: FrozenClock) -> None:
    here, there = ring(database, clock), ring(database, clock)
    first = await here.active()
    assert (await there.active()).kid == first.kid
    rotated = await there.rotate()
    # Within the cache TTL this process still signs with the key it knows.
    assert (await here.active()).kid == first.kid
    clock.advance(5)
    # Past the TTL, the next use still answers from memory and re-reads in the background.
    assert (await here.active()).kid == first.kid
    await here.settle()
    assert (await here.active()).kid == rotated.kid
    # A token signed with a key this process has not seen yet verifies at once: an unknown kid makes it
    # re-read the key set (at most once a second).
    newer = await there.rotate()
    token, _ = await there.sign({"sub": "b"})
    clock.advance(1)
    header, _ = await here.verify(token)
    assert header["kid"] == newer.kid


async def test_eddsa_and_refused_tokens(database: Database, clock: FrozenClock) -> None:
    keys = ring(database, clock, signing_alg="EdDSA")
    token, key = await keys.sign({"sub": "c"})
    assert key.alg == "EdDSA" and (await keys.jwks())["keys"][0]["crv"] == "Ed25519"
    head, body, _sig = token.split(".")
    for bad in (f"{head}.{body}.", "x.y.z", "nodots", token[:-3] + "abc"):
        with pytest.raises(KeyError_):
            await keys.verify(bad)
    with pytest.raises(KeyError_):
        await keys.verify(token, typ="at+jwt")
    with pytest.raises(KeyError_):
        await keys.rotate(alg="HS256")


def test_cli_rotate_and_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESSERA_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")
    monkeypatch.setenv("TESSERA_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    first = runner.invoke(cli, ["keys", "rotate", "--json"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(cli, ["keys", "rotate", "--json"])
    kids = [json.loads(first.output)["kid"], json.loads(second.output)["kid"]]
    listed = json.loads(runner.invoke(cli, ["keys", "list", "--json"]).output)
    assert [k["kid"] for k in listed] == kids[::-1]
    assert [k["status"] for k in listed] == ["active", "retired"]


async def test_a_token_verified_before_is_still_checked_against_the_published_keys(
    database: Database, clock: FrozenClock
) -> None:
    """``verify`` remembers tokens whose signature verified: a second use must still refuse what the first
    would refuse now (a key retired past its tokens' lifetime, another ``typ``), and a token that differs
    in any byte is verified afresh."""
    keys = ring(database, clock, access_token_ttl=600, id_token_ttl=300)
    token, old = await keys.sign({"sub": "d", "jti": "j1"}, typ="at+jwt")
    first = await keys.verify(token, typ="at+jwt")
    again = await keys.verify(token, typ="at+jwt")
    assert again == first and again[1] == {"sub": "d", "jti": "j1"}
    again[1]["sub"] = "changed by a caller"
    assert (await keys.verify(token, typ="at+jwt"))[1]["sub"] == "d"
    with pytest.raises(KeyError_):
        await keys.verify(token, typ="JWT")

    head, body, signature = token.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    with pytest.raises(KeyError_):
        await keys.verify(f"{head}.{body}.{flipped}", typ="at+jwt")
    # Claims of another token under the verified signature: a different token, refused.
    other_body = token.split(".")[1][:-2] + ("AA" if not body.endswith("AA") else "BB")
    with pytest.raises(KeyError_):
        await keys.verify(f"{head}.{other_body}.{signature}", typ="at+jwt")

    await keys.rotate()
    assert (await keys.verify(token, typ="at+jwt"))[0]["kid"] == old.kid  # retired keys still verify
    clock.advance(601)
    with pytest.raises(KeyError_):
        await keys.verify(token, typ="at+jwt")
