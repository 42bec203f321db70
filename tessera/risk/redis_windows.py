"""Sliding windows and token buckets in Redis, shared by every worker of a deployment.

Same contract as ``signals.windows.MemoryWindows``. Counts: two fixed-window keys per key (current and
previous, weighted by overlap), ``INCRBYFLOAT`` + ``EXPIRE`` in one pipeline. Distinct members: a sorted set
scored by last-seen time, trimmed by score and size. Token buckets: one Lua script, so take-and-refill is
atomic
across workers.
"""

from __future__ import annotations

from typing import Any

_TAKE = """
local tokens = tonumber(redis.call('HGET', KEYS[1], 't'))
local last = tonumber(redis.call('HGET', KEYS[1], 'l'))
local now, capacity, refill, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if tokens == nil then tokens = capacity; last = now end
tokens = math.min(capacity, tokens + math.max(0, now - last) * refill)
local left = tokens - cost
redis.call('HSET', KEYS[1], 't', tostring(math.max(0, left)), 'l', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / math.max(refill, 1e-9)) + 60)
return tostring(left)
"""


class RedisWindows:
    def __init__(self, client: Any, *, prefix: str = "tessera:risk:", max_members: int = 4096) -> None:
        self.redis = client
        self.prefix = prefix
        self.max_members = max_members
        self._take = client.register_script(_TAKE)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisWindows:
        from redis.asyncio import Redis

        return cls(Redis.from_url(url), **kwargs)

    def _keys(self, key: str, at: float, window: float) -> tuple[str, str, float]:
        slot = int(at // window)
        base = f"{self.prefix}c:{window:g}:{key}:"
        return base + str(slot), base + str(slot - 1), 1.0 - (at % window) / window

    async def hit(self, key: str, at: float, window: float, amount: int = 1) -> float:
        current, previous, overlap = self._keys(key, at, window)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incrbyfloat(current, amount)
            pipe.expire(current, int(window * 2) + 1)
            pipe.get(previous)
            now, _, before = await pipe.execute()
        return float(now) + float(before or 0.0) * overlap

    async def count(self, key: str, at: float, window: float) -> float:
        current, previous, overlap = self._keys(key, at, window)
        now, before = await self.redis.mget(current, previous)
        return float(now or 0.0) + float(before or 0.0) * overlap

    async def add_member(self, key: str, member: str, at: float, window: float) -> int:
        name = f"{self.prefix}m:{key}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(name, {member: at})
            pipe.zremrangebyscore(name, "-inf", at - window)
            pipe.zremrangebyrank(name, 0, -self.max_members - 1)
            pipe.expire(name, int(window) + 1)
            pipe.zcard(name)
            results = await pipe.execute()
        return int(results[-1])

    async def members(self, key: str, at: float, window: float) -> int:
        return int(await self.redis.zcount(f"{self.prefix}m:{key}", at - window, "+inf"))

    async def take(
        self, key: str, at: float, capacity: float, refill_per_second: float, cost: float = 1.0
    ) -> float:
        left = await self._take(keys=[f"{self.prefix}b:{key}"], args=[at, capacity, refill_per_second, cost])
        return float(left)

    async def tokens(self, key: str, at: float, capacity: float, refill_per_second: float) -> float:
        found = await self.redis.hmget(f"{self.prefix}b:{key}", "t", "l")
        if found[0] is None:
            return capacity
        tokens, last = float(found[0]), float(found[1])
        return min(capacity, tokens + max(0.0, at - last) * refill_per_second)

    async def aclose(self) -> None:
        await self.redis.aclose()
