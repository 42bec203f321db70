"""Password hashing policy: Argon2id at OWASP's parameters, and the same work for unknown emails."""

from __future__ import annotations

from pathlib import Path

from argon2 import PasswordHasher, Type
from sqlalchemy import select

from tessera.core.clock import FrozenClock
from tessera.identity.users import UserService, owasp_password_hasher, users
from tessera.storage.database import Database
from tessera.storage.migrate import upgrade


class CountingHasher(PasswordHasher):
    """A real Argon2 hasher that also counts how many verifications it ran."""

    def __init__(self, **kwargs: int) -> None:
        super().__init__(**kwargs)
        self.verifications = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verifications += 1
        return super().verify(hash, password)


async def migrated(tmp_path: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'u.db'}")
    await upgrade(db)
    return db


async def test_hashes_use_argon2id_at_owasp_parameters(tmp_path: Path, clock: FrozenClock) -> None:
    hasher = owasp_password_hasher()
    assert hasher.type is Type.ID
    assert (hasher.memory_cost, hasher.time_cost, hasher.parallelism) == (19 * 1024, 2, 1)
    db = await migrated(tmp_path)
    try:
        service = UserService(db, clock)
        await service.create("owasp@example.com", "a reasonable passphrase")
        async with db.read() as conn:
            stored = (await conn.execute(select(users.c.password_hash))).scalar_one()
        assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    finally:
        await db.dispose()


async def test_an_old_library_default_hash_is_upgraded(tmp_path: Path, clock: FrozenClock) -> None:
    db = await migrated(tmp_path)
    try:
        legacy = UserService(db, clock, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=2))
        await legacy.create("legacy@example.com", "legacy passphrase")
        current = UserService(db, clock)
        assert await current.verify_password("legacy@example.com", "legacy passphrase") is not None
        async with db.read() as conn:
            stored = (await conn.execute(select(users.c.password_hash))).scalar_one()
        assert "m=19456,t=2,p=1" in stored
        # A wrong password never triggers a rehash.
        await legacy.create("legacy2@example.com", "legacy passphrase")
        assert await current.verify_password("legacy2@example.com", "wrong passphrase") is None
        async with db.read() as conn:
            second = (
                await conn.execute(
                    select(users.c.password_hash).where(users.c.email == "legacy2@example.com")
                )
            ).scalar_one()
        assert "m=1024" in second
    finally:
        await db.dispose()


async def test_unknown_emails_cost_the_same_argon2_work(tmp_path: Path, clock: FrozenClock) -> None:
    db = await migrated(tmp_path)
    try:
        hasher = CountingHasher(time_cost=1, memory_cost=8, parallelism=1)
        service = UserService(db, clock, hasher=hasher)
        await service.create("known@example.com", "known passphrase")
        await service.create("nopassword@example.com")
        disabled = await service.create("disabled@example.com", "known passphrase")
        await service.set_disabled(disabled.id, True)
        cases = [
            ("known@example.com", "wrong passphrase"),
            ("unknown@example.com", "wrong passphrase"),
            ("nopassword@example.com", "wrong passphrase"),
            ("disabled@example.com", "known passphrase"),
            ("not an email", "wrong passphrase"),
            ("known@example.com", "x" * 5000),
        ]
        for email, password in cases:
            before = hasher.verifications
            assert await service.verify_password(email, password) is None
            assert hasher.verifications - before == 1, email
    finally:
        await db.dispose()
