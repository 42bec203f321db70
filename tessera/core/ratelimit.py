"""Rate limits shared by every process of a deployment: in the database, or in Redis when configured.

The algorithm is a sliding-window counter: each key keeps the count of the current fixed window and of the one
before, and the estimate is ``previous * (share of the previous window still inside the sliding window) +
current``. It smooths the burst a plain fixed window allows at its edges, and needs one row (or two Redis
keys) per key.

In the database one atomic ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` (SQLite 3.35+ and PostgreSQL)
moves the window and counts the hit, so concurrent processes never lose a hit. Every hit counts, allowed or
not, so a client that keeps hammering stays blocked.

Use::

    decision = await services.rate_limiter.hit(f"token:{client_id}", limit=100, window_seconds=60)
    if not decision.allowed:
        raise RateLimited(decision)      # 429 with Retry-After (RFC 6585 section 4, RFC 9110 section 10.2.3)
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import BigInteger, Column, Index, Integer, PrimaryKeyConstraint, String, Table, case, select
from sqlalchemy.dialects import postgresql, sqlite

from tessera.core.clock import Clock
from tessera.core.errors import OAuthError, TooManyRequests
from tessera.core.ids import sha256_hex
from tessera.storage.database import Database
from tessera.storage.schema import metadata

MAX_KEY_LENGTH = 200

rate_limit_counters = Table(
    "rate_limit_counters",
    metadata,
    Column("key", String(200), nullable=False),
    Column("window", BigInteger, nullable=False),  # index of the current fixed window: floor(now / size)
    Column("count", Integer, nullable=False),
    Column("previous_count", Integer, nullable=False),
    Column("expires_at", BigInteger, nullable=False),  # epoch seconds after which the row means nothing
    PrimaryKeyConstraint("key", name="pk_rate_limit_counters"),
    Index("ix_rate_limit_counters_expires_at", "expires_at"),
)


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    remaining: int
    retry_after: int  # seconds; 0 when allowed

    def headers(self, limit: int | None = None) -> dict[str, str]:
        """Retry-After when refused (RFC 9110 section 10.2.3), and the remaining budget."""
        values = {"RateLimit-Remaining": str(self.remaining)}
        if limit is not None:
            values["RateLimit-Limit"] = str(limit)
        if not self.allowed:
            values["Retry-After"] = str(self.retry_after)
        return values


class RateLimited(OAuthError, TooManyRequests):
    """429 Too Many Requests with Retry-After; on OAuth endpoints it renders as an RFC 6749 error object."""

    code = "too_many_requests"
    status_code = 429

    def __init__(self, decision: RateDecision, description: str = "too many requests; retry later"):
        super().__init__(description, headers=decision.headers())
        self.decision = decision


def storage_key(key: str) -> str:
    """Keys are caller-built (they may hold emails, IPs, client ids); long ones are hashed to fit."""
    if len(key) <= MAX_KEY_LENGTH:
        return key
    return key[:100] + "#" + sha256_hex(key)


def decide(
    count: int, previous: int, *, now: float, window: int, window_seconds: int, limit: int
) -> RateDecision:
    """The sliding-window estimate for ``count`` hits in ``window`` and ``previous`` in the one before."""
    start = window * window_seconds
    elapsed = min(max(now - start, 0.0), float(window_seconds))
    weight = 1.0 - elapsed / window_seconds  # share of the previous window still inside the sliding window
    estimate = previous * weight + count
    if estimate <= limit:
        return RateDecision(True, max(0, math.floor(limit - estimate)), 0)
    if count > limit:
        # Even after this window ends, its hits weigh on the next one until curr * (1 - f) <= limit.
        wait = (start + window_seconds - now) + window_seconds * (1.0 - limit / count)
    else:
        # Wait until the previous window's share has decayed enough: previous * (1 - f) + count <= limit.
        wait = start + window_seconds * (1.0 - (limit - count) / previous) - now
    return RateDecision(False, 0, max(1, math.ceil(wait)))


class RateLimitBackend(Protocol):
    async def hit(self, key: str, *, now: float, window_seconds: int) -> tuple[int, int, int]: ...
    async def peek(self, key: str, *, now: float, window_seconds: int) -> tuple[int, int, int]: ...
    async def reset(self, key: str, *, now: float, window_seconds: int) -> None: ...
    async def aclose(self) -> None: ...


class DatabaseBackend:
    """One row per key in ``rate_limit_counters``, moved and counted by one atomic upsert."""

    PRUNE_EVERY = 1000  # about one hit in this many also deletes expired rows

    def __init__(self, db: Database):
        self._db = db

    async def hit(self, key: str, *, now: float, window_seconds: int) -> tuple[int, int, int]:
        table = rate_limit_counters
        window = int(now // window_seconds)
        expires_at = (window + 2) * window_seconds
        insert = (sqlite.insert if self._db.is_sqlite else postgresql.insert)(table)
        stmt = insert.values(key=key, window=window, count=1, previous_count=0, expires_at=expires_at)
        excluded = stmt.excluded
        # In both dialects every SET expression sees the row as it was before the update.
        upsert = stmt.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={
                "count": case((table.c.window == excluded.window, table.c.count + 1), else_=1),
                "previous_count": case(
                    (table.c.window == excluded.window, table.c.previous_count),
                    (table.c.window == excluded.window - 1, table.c.count),
                    else_=0,
                ),
                "window": excluded.window,
                "expires_at": excluded.expires_at,
            },
        ).returning(table.c.window, table.c.count, table.c.previous_count)
        async with self._db.transaction() as conn:
            row = (await conn.execute(upsert)).mappings().one()
            if random.randrange(self.PRUNE_EVERY) == 0:  # noqa: S311 (not a secret, only a sampling rate)
                await conn.execute(table.delete().where(table.c.expires_at < int(now)))
        return int(row["window"]), int(row["count"]), int(row["previous_count"])

    async def peek(self, key: str, *, now: float, window_seconds: int) -> tuple[int, int, int]:
        table = rate_limit_counters
        window = int(now // window_seconds)
        async with self._db.read() as conn:
            row = (await conn.execute(select(table).where(table.c.key == key))).mappings().first()
        if row is None:
            return window, 0, 0
        if row["window"] == window:
            return window, int(row["count"]), int(row["previous_count"])
        if row["window"] == window - 1:
            return window, 0, int(row["count"])
        return window, 0, 0

    async def reset(self, key: str, *, now: float, window_seconds: int) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(rate_limit_counters.delete().where(rate_limit_counters.c.key == key))

    async def prune(self, now: float) -> int:
        async with self._db.transaction() as conn:
            result = await conn.execute(
                rate_limit_counters.delete().where(rate_limit_counters.c.expires_at < int(now))
            )
        return int(result.rowcount or 0)

    async def aclose(self) -> None:
        return None


class RedisBackend:
    """Two keys per limit (current and previous window), counted in one MULTI/EXEC transaction."""

    def __init__(self, url: str, *, prefix: str = "tessera:rl:"):
        self._url = url
        self._prefix = prefix
        self._client: Any = None

    def _redis(self) -> Any:
        # Created on first use, inside the running event loop (redis.asyncio connections belong to one loop).
        if self._client is None:
            from redis.asyncio import Redis

            self._client = Redis.from_url(self._url)
        return self._client

    def _names(self, key: str, window: int, window_seconds: int) -> tuple[str, str]:
        base = f"{self._prefix}{window_seconds}:{key}:"
        return base + str(window), base + str(window - 1)

    async def hit(self, key: str, *, now: float, window_seconds: int) -> tuple[int, int, int]:
        window = int(now // window_seconds)
        current, previous = self._names(key, window, window_seconds)
        async with self._redis().pipeline(transaction=True) as pipe:
            pipe.incr(current)
            pipe.expire(current, 2 * window_seconds + 1)
            pipe.get(previous)
            count, _, prev = await pipe.execute()
        return window, int(count), int(prev or 0)

    async def peek(self, key: str, *, now: float, window_seconds: int) -> tuple[int, int, int]:
        window = int(now // window_seconds)
        current, previous = self._names(key, window, window_seconds)
        count, prev = await self._redis().mget(current, previous)
        return window, int(count or 0), int(prev or 0)

    async def reset(self, key: str, *, now: float, window_seconds: int) -> None:
        window = int(now // window_seconds)
        await self._redis().delete(*self._names(key, window, window_seconds))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class RateLimiter:
    """``services.rate_limiter``: ``await hit(key, limit=..., window_seconds=...)``."""

    def __init__(self, backend: RateLimitBackend, clock: Clock):
        self._backend = backend
        self._clock = clock

    @classmethod
    def for_settings(cls, db: Database, clock: Clock, redis_url: str | None) -> RateLimiter:
        backend: RateLimitBackend = RedisBackend(redis_url) if redis_url else DatabaseBackend(db)
        return cls(backend, clock)

    @staticmethod
    def _check(limit: int, window_seconds: int) -> None:
        if limit < 1 or window_seconds < 1:
            raise ValueError("limit and window_seconds must be at least 1")

    async def hit(self, key: str, *, limit: int, window_seconds: int) -> RateDecision:
        """Count one hit against ``key`` and say whether it is within ``limit`` per ``window_seconds``."""
        self._check(limit, window_seconds)
        now = self._clock.now()
        window, count, previous = await self._backend.hit(
            storage_key(key), now=now, window_seconds=window_seconds
        )
        return decide(count, previous, now=now, window=window, window_seconds=window_seconds, limit=limit)

    async def peek(self, key: str, *, limit: int, window_seconds: int) -> RateDecision:
        """The decision a hit would get if it were not counted (a ``hit`` that was allowed: within limit)."""
        self._check(limit, window_seconds)
        now = self._clock.now()
        window, count, previous = await self._backend.peek(
            storage_key(key), now=now, window_seconds=window_seconds
        )
        # Would one more hit still fit? Decide on count + 1, as ``hit`` would.
        return decide(count + 1, previous, now=now, window=window, window_seconds=window_seconds, limit=limit)

    async def reset(self, key: str, *, window_seconds: int) -> None:
        """Forget ``key``'s hits (after a successful sign-in, earlier failed attempts no longer count)."""
        await self._backend.reset(storage_key(key), now=self._clock.now(), window_seconds=window_seconds)

    async def enforce(self, key: str, *, limit: int, window_seconds: int) -> RateDecision:
        """``hit``, raising ``RateLimited`` (429, Retry-After) when over the limit: for API endpoints."""
        decision = await self.hit(key, limit=limit, window_seconds=window_seconds)
        if not decision.allowed:
            raise RateLimited(decision)
        return decision

    async def aclose(self) -> None:
        await self._backend.aclose()
