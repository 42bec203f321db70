"""Sliding windows and token buckets: one suite for the in-process store and for Redis (``redis_url``)."""

from __future__ import annotations

import uuid

import pytest

from tessera.risk.redis_windows import RedisWindows
from tessera.risk.signals.windows import MemoryWindows, WindowStore

T0 = 1_767_225_600.0


async def conformance(w: WindowStore, prefix: str) -> None:
    key = prefix + "fails"
    assert await w.count(key, T0, 3600) == 0
    for i in range(10):
        await w.hit(key, T0 + i, 3600)
    assert await w.count(key, T0 + 10, 3600) == pytest.approx(10)
    # Half way through the next window, half of the previous one still counts.
    assert await w.count(key, T0 - T0 % 3600 + 3600 + 1800, 3600) == pytest.approx(5, abs=0.2)
    assert await w.count(key, T0 + 3 * 3600, 3600) == 0
    members = prefix + "ids"
    assert await w.add_member(members, "a", T0, 3600) == 1
    assert await w.add_member(members, "b", T0 + 10, 3600) == 2
    assert await w.add_member(members, "a", T0 + 20, 3600) == 2
    assert await w.members(members, T0 + 3605, 3600) == 2
    assert await w.members(members, T0 + 3615, 3600) == 1  # b expired, a was seen again
    bucket = prefix + "bucket"
    assert await w.tokens(bucket, T0, 3, 1 / 60) == 3
    assert await w.take(bucket, T0, 3, 1 / 60) == pytest.approx(2)
    assert await w.take(bucket, T0, 3, 1 / 60) == pytest.approx(1)
    assert await w.take(bucket, T0, 3, 1 / 60) == pytest.approx(0)
    assert await w.take(bucket, T0, 3, 1 / 60) < 0  # empty
    assert await w.tokens(bucket, T0 + 60, 3, 1 / 60) == pytest.approx(1)
    assert await w.tokens(bucket, T0 + 3600, 3, 1 / 60) == pytest.approx(3)  # never above capacity


async def test_memory_windows() -> None:
    await conformance(MemoryWindows(), "")


async def test_memory_windows_are_bounded() -> None:
    w = MemoryWindows(max_keys=100, max_members=10)
    for i in range(1000):
        await w.hit(f"k{i}", T0, 60)
        await w.add_member("one", f"m{i}", T0 + i * 0.001, 3600)
    assert len(w._counters) <= 100
    assert await w.members("one", T0 + 2, 3600) == 10


async def test_redis_windows(redis_url: str) -> None:
    windows = RedisWindows.from_url(redis_url)
    try:
        await conformance(windows, f"test-{uuid.uuid4().hex}:")
    finally:
        await windows.aclose()
