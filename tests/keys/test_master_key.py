"""The master key that seals private signing keys at rest: the embedded setup makes a key file once (owner
only), every later process opens the same keys with it, another master key opens nothing, and a PostgreSQL
deployment must bring its key rather than get one made on the fly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from tessera.core.errors import TesseraError
from tessera.core.sealing import generate_master_key
from tessera.keys.store import signing_keys
from tessera.services import Services
from tessera.settings import Settings
from tessera.storage.migrate import upgrade


def embedded(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}",
        "data_dir": tmp_path / "data",
        "issuer": "http://127.0.0.1:8000",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def test_the_key_file_is_made_once_and_reopens_the_same_keys(tmp_path: Path) -> None:
    first = Services(embedded(tmp_path))
    try:
        await upgrade(first.db)
        token, key = await first.keys.sign({"sub": "a"})
        jwks: Any = await first.keys.jwks()  # joserfc types its input as a TypedDict
    finally:
        await first.aclose()
    key_file = tmp_path / "data" / "master.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    written = key_file.read_bytes()

    second = Services(embedded(tmp_path))
    try:
        again, same = await second.keys.sign({"sub": "b"})
        assert same.kid == key.kid  # unsealed with the key file, not replaced by a new key
        assert await second.keys.jwks() == jwks
        assert jwt.decode(again, KeySet.import_key_set(jwks)).claims["sub"] == "b"
        assert (await second.keys.verify(token))[1]["sub"] == "a"
    finally:
        await second.aclose()
    assert key_file.read_bytes() == written

    reader = Services(embedded(tmp_path))
    try:
        async with reader.db.read() as conn:
            sealed = (await conn.execute(select(signing_keys.c.private_key))).scalar_one()
    finally:
        await reader.aclose()
    assert b"PRIVATE KEY" not in sealed and b'"d"' not in sealed


async def test_another_master_key_opens_nothing(tmp_path: Path) -> None:
    owner = Services(embedded(tmp_path, master_key=generate_master_key()))
    try:
        await upgrade(owner.db)
        await owner.keys.sign({"sub": "a"})
    finally:
        await owner.aclose()
    stranger = Services(embedded(tmp_path, master_key=generate_master_key()))
    try:
        with pytest.raises(InvalidTag):
            await stranger.keys.sign({"sub": "b"})
    finally:
        await stranger.aclose()


def test_a_postgresql_deployment_must_bring_its_master_key(tmp_path: Path) -> None:
    settings = Settings(
        database_url="postgresql+asyncpg://tessera@127.0.0.1/none", data_dir=tmp_path / "data"
    )
    with pytest.raises(TesseraError, match="does not exist"):
        _ = Services(settings).sealer
    assert not (tmp_path / "data" / "master.key").exists()
    with_key = Services(settings.model_copy(update={"master_key_file": tmp_path / "given.key"}))
    (tmp_path / "given.key").write_text(generate_master_key() + "\n")
    assert with_key.sealer.open(with_key.sealer.seal(b"x", "c"), "c") == b"x"
