"""Storage conformance for users, sessions and the rate limiter, on SQLite and PostgreSQL (and Redis)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from tessera.core.clock import FrozenClock
from tessera.core.errors import Conflict, ValidationFailed
from tessera.core.ids import new_id, sha256_hex
from tessera.core.ratelimit import DatabaseBackend, RateLimiter, RedisBackend, rate_limit_counters
from tessera.identity.sessions import LoginSession, SessionService, login_sessions
from tessera.identity.sql import SqlSessionStore, SqlUserStore
from tessera.identity.stores import SessionStore, UserStore
from tessera.identity.users import User, UserService, users
from tessera.storage.database import Database

# Tests hash with cheap parameters; the OWASP parameters are checked in test_users.py.
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture
def user_service(database: Database, clock: FrozenClock) -> UserService:
    return UserService(database, clock, hasher=FAST)


async def test_create_normalises_email_and_refuses_duplicates(user_service: UserService) -> None:
    user = await user_service.create("  Alice@Example.COM ", "correct horse", name="Alice")
    assert user.email == "alice@example.com"
    assert user.name == "Alice" and not user.email_verified and not user.disabled
    assert len(user.id) == 26
    with pytest.raises(Conflict):
        await user_service.create("ALICE@example.com", "another password")
    assert await user_service.get(user.id) == user
    assert await user_service.find_by_email("alice@EXAMPLE.com") == user
    assert await user_service.find_by_email("bob@example.com") is None
    assert await user_service.find_by_email("not an email") is None
    assert await user_service.get("01NOPE") is None


@pytest.mark.parametrize(
    "email",
    ["", "no-at-sign", "@example.com", "a@", "a b@example.com", "a@b@", "x" * 250 + "@e.co", "a\x00@e.co"],
)
async def test_create_refuses_bad_emails(user_service: UserService, email: str) -> None:
    with pytest.raises(ValidationFailed):
        await user_service.create(email, "long enough password")


async def test_create_refuses_weak_or_huge_passwords(user_service: UserService, database: Database) -> None:
    with pytest.raises(ValidationFailed):
        await user_service.create("short@example.com", "1234567")
    with pytest.raises(ValidationFailed):
        await user_service.create("huge@example.com", "x" * 1025)
    async with database.read() as conn:
        assert (await conn.execute(select(users))).all() == []


async def test_verify_password(user_service: UserService, database: Database) -> None:
    user = await user_service.create("carol@example.com", "s3cret-passphrase")
    assert await user_service.verify_password("CAROL@example.com", "s3cret-passphrase") == user
    assert await user_service.verify_password("carol@example.com", "wrong") is None
    assert await user_service.verify_password("nobody@example.com", "s3cret-passphrase") is None
    assert await user_service.verify_password("not an email", "x") is None
    assert await user_service.verify_password("carol@example.com", "x" * 5000) is None
    async with database.read() as conn:
        stored = (await conn.execute(select(users.c.password_hash))).scalar_one()
    assert stored.startswith("$argon2id$") and "s3cret" not in stored

    passwordless = await user_service.create("dave@example.com")
    assert await user_service.verify_password("dave@example.com", "") is None
    await user_service.set_password(passwordless.id, "now-has-one")
    assert await user_service.verify_password("dave@example.com", "now-has-one") is not None

    await user_service.set_disabled(user.id, True)
    assert await user_service.verify_password("carol@example.com", "s3cret-passphrase") is None


async def test_rehash_when_parameters_change(database: Database, clock: FrozenClock) -> None:
    old = UserService(database, clock, hasher=FAST)
    await old.create("erin@example.com", "old-parameters")
    stronger = PasswordHasher(time_cost=2, memory_cost=16, parallelism=1)
    new = UserService(database, clock, hasher=stronger)
    assert await new.verify_password("erin@example.com", "old-parameters") is not None
    async with database.read() as conn:
        stored = (await conn.execute(select(users.c.password_hash))).scalar_one()
    assert "t=2" in stored and "m=16" in stored
    assert not stronger.check_needs_rehash(stored)
    assert await new.verify_password("erin@example.com", "old-parameters") is not None


async def test_page_lists_in_creation_order(user_service: UserService) -> None:
    created = [await user_service.create(f"u{i}@example.com") for i in range(3)]
    assert [u.id for u in await user_service.page(limit=2)] == [created[0].id, created[1].id]
    assert [u.id for u in await user_service.page(after=created[1].id)] == [created[2].id]


async def test_sessions_lifecycle(database: Database, clock: FrozenClock, user_service: UserService) -> None:
    sessions = SessionService(database, clock, ttl_seconds=3600)
    user = await user_service.create("frank@example.com", "password-frank")
    session, cookie = await sessions.create(user.id, ["pwd"], "203.0.113.5", "Mozilla/5.0 " + "x" * 2000)
    assert len(cookie) >= 43  # 32 random bytes, base64url
    assert session.auth_time == datetime.fromtimestamp(clock.now(), UTC)
    assert session.expires_at - session.auth_time == timedelta(seconds=3600)
    assert session.user_agent is not None and len(session.user_agent) == 1024

    found = await sessions.get_by_cookie(cookie)
    assert found == session and found.amr == ["pwd"]
    assert await sessions.get(session.id) == session
    # Only the hash is stored; the cookie value itself is nowhere in the table.
    async with database.read() as conn:
        row = (await conn.execute(select(login_sessions))).one()
    assert row.cookie_hash == sha256_hex(cookie) and cookie not in str(tuple(row))

    assert await sessions.get_by_cookie(cookie + "x") is None
    assert await sessions.get_by_cookie("") is None
    assert await sessions.get_by_cookie("a" * 10_000) is None

    other, other_cookie = await sessions.create(user.id, ["pwd", "otp"], None, None)
    assert [s.id for s in await sessions.list_for_user(user.id)] == [other.id, session.id]

    assert await sessions.end(session.id, "logout") is True
    assert await sessions.end(session.id, "logout") is False
    assert await sessions.get_by_cookie(cookie) is None
    assert [s.id for s in await sessions.list_for_user(user.id)] == [other.id]

    clock.advance(3601)
    assert await sessions.get_by_cookie(other_cookie) is None
    assert await sessions.list_for_user(user.id) == []


async def test_end_all_and_disabled_users(
    database: Database, clock: FrozenClock, user_service: UserService
) -> None:
    sessions = SessionService(database, clock, ttl_seconds=3600)
    user = await user_service.create("gina@example.com")
    bystander = await user_service.create("hal@example.com")
    _, c1 = await sessions.create(user.id, ["pwd"], None, None)
    _, c2 = await sessions.create(user.id, ["pwd"], None, None)
    _, c3 = await sessions.create(bystander.id, ["pwd"], None, None)
    assert await sessions.end_all_for_user(user.id) == 2
    assert await sessions.get_by_cookie(c1) is None and await sessions.get_by_cookie(c2) is None
    assert await sessions.get_by_cookie(c3) is not None

    await user_service.set_disabled(bystander.id, True)
    assert await sessions.get_by_cookie(c3) is None
    await user_service.set_disabled(bystander.id, False)
    assert await sessions.get_by_cookie(c3) is not None

    clock.advance(31 * 86400 + 3600)
    assert await sessions.prune() == 3


async def _exercise_limiter(limiter: RateLimiter, clock: FrozenClock, key: str) -> None:
    # Start at a window boundary so the arithmetic below is exact.
    clock.at = (int(clock.at) // 60 + 1) * 60
    decisions = [await limiter.hit(key, limit=3, window_seconds=60) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[3].retry_after > 0
    assert (await limiter.peek(key, limit=3, window_seconds=60)).allowed is False
    assert (await limiter.hit("other:" + key, limit=3, window_seconds=60)).allowed is True

    # Half way into the next window, half of the previous window's 4 hits still count: 2 + 1 = 3 <= 3.
    clock.advance(90)
    assert (await limiter.peek(key, limit=3, window_seconds=60)).allowed is True
    assert (await limiter.hit(key, limit=3, window_seconds=60)).allowed is True
    assert (await limiter.hit(key, limit=3, window_seconds=60)).allowed is False

    # Two windows later nothing is left.
    clock.advance(120)
    assert (await limiter.hit(key, limit=1, window_seconds=60)).allowed is True
    await limiter.reset(key, window_seconds=60)
    assert (await limiter.hit(key, limit=1, window_seconds=60)).remaining == 0
    with pytest.raises(ValueError):
        await limiter.hit(key, limit=0, window_seconds=60)


async def test_rate_limiter_in_the_database(database: Database, clock: FrozenClock) -> None:
    limiter = RateLimiter(DatabaseBackend(database), clock)
    await _exercise_limiter(limiter, clock, "login:ip:203.0.113.7")
    long_key = "login:id:" + "x" * 500
    assert (await limiter.hit(long_key, limit=1, window_seconds=60)).allowed is True
    assert (await limiter.hit(long_key, limit=1, window_seconds=60)).allowed is False
    async with database.read() as conn:
        keys = (await conn.execute(select(rate_limit_counters.c.key))).scalars().all()
    assert all(len(k) <= 200 for k in keys)
    clock.advance(3600)
    assert await DatabaseBackend(database).prune(clock.now()) == len(keys)


async def test_rate_limiter_counts_concurrent_hits_exactly(database: Database, clock: FrozenClock) -> None:
    # Separate limiters (as separate processes would have) over one database: no hit may be lost.
    limiters = [RateLimiter(DatabaseBackend(database), clock) for _ in range(4)]
    results = await asyncio.gather(
        *(limiters[i % 4].hit("concurrent", limit=20, window_seconds=3600) for i in range(30))
    )
    assert sum(d.allowed for d in results) == 20
    assert sorted(d.remaining for d in results if d.allowed) == list(range(20))


@pytest.mark.redis
async def test_rate_limiter_in_redis(redis_url: str, clock: FrozenClock) -> None:
    from uuid import uuid4

    limiter = RateLimiter(RedisBackend(redis_url, prefix=f"test:{uuid4().hex}:"), clock)
    try:
        await _exercise_limiter(limiter, clock, "login:ip:203.0.113.7")
        results = await asyncio.gather(
            *(limiter.hit("concurrent", limit=5, window_seconds=60) for _ in range(8))
        )
        assert sum(d.allowed for d in results) == 5
    finally:
        await limiter.aclose()


async def test_user_store_keeps_its_protocol(database: Database) -> None:
    """``SqlUserStore`` against ``stores.UserStore`` directly: what the services rely on a store for."""
    store: UserStore = SqlUserStore(database)
    at = datetime(2027, 1, 1, tzinfo=UTC)
    ada = User(
        id=new_id(), email="ada@example.com", email_verified=False, name="Ada", created_at=at, disabled=False
    )
    await store.insert(ada, "hash-1", at)
    with pytest.raises(Conflict):  # same email, another id: the unique index decides, nothing is written
        await store.insert(replace(ada, id=new_id()), None, at)
    assert [u.id for u in await store.page(limit=10, after=None)] == [ada.id]
    assert await store.credentials("ada@example.com") == (ada, "hash-1")
    assert await store.credentials("nobody@example.com") is None
    # A re-hash only replaces the hash it verified.
    assert not await store.set_password_hash(ada.id, "hash-2", at, replacing="stale")
    assert await store.credentials("ada@example.com") == (ada, "hash-1")
    assert await store.set_password_hash(ada.id, "hash-2", at, replacing="hash-1")
    assert await store.set_password_hash(ada.id, None, at)
    assert await store.credentials("ada@example.com") == (ada, None)
    assert await store.set_disabled(ada.id, True, at)
    assert (await store.get(ada.id)) == replace(ada, disabled=True)
    assert not await store.set_disabled("missing", True, at)
    assert not await store.set_email_verified("missing", True, at)
    bob = User(
        id=new_id(), email="bob@example.com", email_verified=True, name=None, created_at=at, disabled=False
    )
    await store.insert(bob, None, at)
    assert [u.id for u in await store.page(limit=1, after=ada.id)] == [bob.id]
    assert await store.find_by_email("bob@example.com") == bob


async def test_session_store_keeps_its_protocol(database: Database) -> None:
    users_store: UserStore = SqlUserStore(database)
    store: SessionStore = SqlSessionStore(database)
    at = datetime(2027, 1, 1, tzinfo=UTC)
    user = User(
        id=new_id(), email="s@example.com", email_verified=True, name=None, created_at=at, disabled=False
    )
    await users_store.insert(user, None, at)
    session = LoginSession(
        id=new_id(),
        user_id=user.id,
        auth_time=at,
        amr=["pwd"],
        created_at=at,
        expires_at=at + timedelta(hours=1),
        ip="192.0.2.1",
        user_agent="test",
    )
    await store.insert(session, "c" * 64)
    assert await store.live_by_cookie_hash("c" * 64, at) == session
    assert await store.live(session.id, at + timedelta(hours=1)) is None  # expired at expires_at
    assert await store.live_for_user(user.id, at) == [session]
    await users_store.set_disabled(user.id, True, at)
    assert await store.live(session.id, at) is None  # a disabled user has no live session
    await users_store.set_disabled(user.id, False, at)
    # In the caller's transaction, an ending is undone with it (the audit event beside it too).
    with pytest.raises(RuntimeError):
        async with database.transaction() as conn:
            assert await store.end(session.id, "signed_out", at, conn=conn)
            assert await store.end_all_for_user(user.id, "admin", at, conn=conn) == 0
            raise RuntimeError("the caller fails after the ending")
    assert await store.live(session.id, at) == session
    assert await store.end(session.id, "signed_out", at)
    assert not await store.end(session.id, "again", at)
    assert await store.live(session.id, at) is None
    assert await store.end_all_for_user(user.id, "admin", at) == 0
    assert await store.prune(at) == 0  # ended at ``at``, not before it
    assert await store.prune(at + timedelta(seconds=1)) == 1
