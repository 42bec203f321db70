"""Sliding windows and token buckets for global patterns: failures per identifier, IP and ASN; distinct
identifiers per IP, ASN, device and password fingerprint.

``WindowStore`` is the protocol; ``MemoryWindows`` keeps them in-process (one server, replays, tests) and
``tessera.risk.redis_windows.RedisWindows`` shares them between workers. Counts use the sliding-window
approximation of two fixed windows (the previous one weighted by how much of it still overlaps), which needs
two integers per key; distinct counts keep each member's last-seen time, capped per key.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol


class WindowStore(Protocol):
    async def hit(self, key: str, at: float, window: float, amount: int = 1) -> float:
        """Add ``amount`` at time ``at``; return the count over the last ``window`` seconds (this hit
        included)."""

    async def count(self, key: str, at: float, window: float) -> float: ...

    async def add_member(self, key: str, member: str, at: float, window: float) -> int:
        """Record ``member``; return how many distinct members were seen in the last ``window`` seconds."""

    async def members(self, key: str, at: float, window: float) -> int: ...

    async def take(
        self, key: str, at: float, capacity: float, refill_per_second: float, cost: float = 1.0
    ) -> float:
        """Token bucket: take ``cost`` tokens (never below zero); return the tokens left (negative: was
        empty)."""

    async def tokens(self, key: str, at: float, capacity: float, refill_per_second: float) -> float: ...


@dataclass(slots=True)
class _Counter:
    slot: int
    current: float
    previous: float


class MemoryWindows:
    """In-process windows, bounded: at most ``max_keys`` keys (least recently used go first) and
    ``max_members`` members per distinct-count key."""

    def __init__(self, max_keys: int = 200_000, max_members: int = 4096) -> None:
        self._counters: OrderedDict[str, _Counter] = OrderedDict()
        self._members: OrderedDict[str, OrderedDict[str, float]] = OrderedDict()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max_keys = max_keys
        self._max_members = max_members

    def _trim(self, table: OrderedDict[str, object]) -> None:
        while len(table) > self._max_keys:
            table.popitem(last=False)

    def _roll(self, key: str, at: float, window: float) -> _Counter:
        slot = int(at // window)
        counter = self._counters.get(key)
        if counter is None:
            counter = _Counter(slot, 0.0, 0.0)
            self._counters[key] = counter
            self._trim(self._counters)  # type: ignore[arg-type]
        elif slot > counter.slot:
            counter.previous = counter.current if slot == counter.slot + 1 else 0.0
            counter.current = 0.0
            counter.slot = slot
        return counter

    @staticmethod
    def _value(counter: _Counter, at: float, window: float) -> float:
        overlap = 1.0 - (at % window) / window
        return counter.current + counter.previous * overlap

    async def hit(self, key: str, at: float, window: float, amount: int = 1) -> float:
        name = f"{key}|{window:g}"
        counter = self._roll(name, at, window)
        slot = int(at // window)
        if slot == counter.slot:
            counter.current += amount
        elif slot == counter.slot - 1:
            counter.previous += amount  # a slightly late event (replays of logs a few seconds out of order)
        self._counters.move_to_end(name)
        return self._value(counter, at, window) if slot == counter.slot else counter.current

    async def count(self, key: str, at: float, window: float) -> float:
        counter = self._counters.get(f"{key}|{window:g}")
        if counter is None:
            return 0.0
        slot = int(at // window)
        if slot == counter.slot:
            return self._value(counter, at, window)
        if slot == counter.slot + 1:
            return counter.current * (1.0 - (at % window) / window)
        if slot < counter.slot:
            return counter.current
        return 0.0

    async def add_member(self, key: str, member: str, at: float, window: float) -> int:
        seen = self._members.get(key)
        if seen is None:
            seen = OrderedDict()
            self._members[key] = seen
            self._trim(self._members)  # type: ignore[arg-type]
        self._members.move_to_end(key)
        seen[member] = at
        seen.move_to_end(member)
        self._expire(seen, at - window)
        while len(seen) > self._max_members:
            seen.popitem(last=False)
        return len(seen)

    @staticmethod
    def _expire(seen: OrderedDict[str, float], cutoff: float) -> None:
        # Members are ordered by last-seen time (replays may deliver the same second out of order: harmless).
        while seen:
            first = next(iter(seen.values()))
            if first >= cutoff:
                break
            seen.popitem(last=False)

    async def members(self, key: str, at: float, window: float) -> int:
        seen = self._members.get(key)
        if not seen:
            return 0
        self._expire(seen, at - window)
        return len(seen)

    def _refill(self, key: str, at: float, capacity: float, refill: float) -> float:
        tokens, last = self._buckets.get(key, (capacity, at))
        return min(capacity, tokens + max(0.0, at - last) * refill)

    async def take(
        self, key: str, at: float, capacity: float, refill_per_second: float, cost: float = 1.0
    ) -> float:
        tokens = self._refill(key, at, capacity, refill_per_second)
        left = tokens - cost
        self._buckets[key] = (max(0.0, left), at)
        self._buckets.move_to_end(key)
        self._trim(self._buckets)  # type: ignore[arg-type]
        return left

    async def tokens(self, key: str, at: float, capacity: float, refill_per_second: float) -> float:
        if key not in self._buckets:
            return capacity
        return self._refill(key, at, capacity, refill_per_second)
