"""Periodic flushing of the global counts: the background task, its context manager, failures and shutdown.

Ticks are driven by the test through ``wait`` (never by sleeping), on the real SQL store (SQLite and
PostgreSQL via ``database``) and on a store that fails on demand.
"""

from __future__ import annotations

import asyncio

import pytest

from tessera.risk.config import RiskConfig
from tessera.risk.engine import RiskEngine
from tessera.risk.events import LoginEvent
from tessera.risk.sql import SqlRiskStore
from tessera.risk.store import MemoryStore
from tessera.storage.database import Database

from .conftest import SECRET

T0 = 1_767_225_600.0


def login(i: int, user: str = "alice") -> LoginEvent:
    return LoginEvent(timestamp=T0 + i * 60, user_id=user, ip=f"84.1.1.{i % 250 + 1}", country="DE", asn=3320)


class Ticks:
    """A ``wait`` for start_flushing: each ``tick()`` lets the loop run one flush and returns once the loop
    is waiting again (so that flush is done)."""

    def __init__(self) -> None:
        self.intervals: list[float] = []
        self._go: asyncio.Queue[None] = asyncio.Queue()
        self._changed = asyncio.Condition()

    async def wait(self, seconds: float) -> None:
        async with self._changed:
            self.intervals.append(seconds)
            self._changed.notify_all()
        await self._go.get()

    async def ready(self, calls: int = 1) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.intervals) >= calls)

    async def tick(self) -> None:
        await self.ready()
        calls = len(self.intervals)
        self._go.put_nowait(None)
        await self.ready(calls + 1)


class FailingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.fail = 0

    async def add_global_counts(self, family: str, deltas: dict[str, float]) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("database went away")
        await super().add_global_counts(family, deltas)


async def test_background_task_flushes_each_tick_to_the_database(database: Database) -> None:
    store = SqlRiskStore(database)
    engine = RiskEngine(secret=SECRET, store=store)
    ticks = Ticks()
    task = engine.start_flushing(30.0, wait=ticks.wait)
    assert engine.start_flushing(30.0) is task  # one flusher per engine
    await ticks.ready()
    for i in range(3):
        await engine.assess(login(i))
    assert await store.global_counts("net") == {}  # nothing written before the tick
    await ticks.tick()
    assert (await store.global_counts("net"))[""] == 3.0
    await engine.assess(login(3))
    await ticks.tick()
    counts = await store.global_counts("net")
    assert counts[""] == 4.0 and counts["DE"] == 4.0 and counts["DE\x1f3320"] == 4.0
    assert ticks.intervals and set(ticks.intervals) == {30.0}
    # A second worker starting now reads what the first one flushed.
    other = RiskEngine(secret=SECRET, store=store)
    await other.load()
    assert other.world.net.total == 4.0
    await engine.aclose()
    assert task.done() and engine.world.net.total == 4.0


async def test_a_failed_write_keeps_the_counts_for_the_next_tick() -> None:
    store = FailingStore()
    engine = RiskEngine(secret=SECRET, store=store)
    ticks = Ticks()
    engine.start_flushing(5.0, wait=ticks.wait)
    await engine.assess(login(0))
    store.fail = 1
    await ticks.tick()  # the write fails; the task survives and nothing is lost
    assert await store.global_counts("net") == {}
    await engine.assess(login(1))
    await ticks.tick()
    assert (await store.global_counts("net"))[""] == 2.0
    await engine.aclose()


async def test_counts_made_during_a_slow_write_are_not_lost() -> None:
    class SlowStore(MemoryStore):
        def __init__(self) -> None:
            super().__init__()
            self.entered = asyncio.Event()
            self.release = asyncio.Event()

        async def add_global_counts(self, family: str, deltas: dict[str, float]) -> None:
            self.entered.set()
            await self.release.wait()
            await super().add_global_counts(family, deltas)

    store = SlowStore()
    engine = RiskEngine(secret=SECRET, store=store)
    await engine.assess(login(0))
    flush = asyncio.create_task(engine.flush())
    await store.entered.wait()
    await engine.assess(login(1))  # scored while the first batch is being written
    store.release.set()
    await flush
    assert (await store.global_counts("net"))[""] == 1.0
    await engine.flush()
    assert (await store.global_counts("net"))[""] == 2.0


async def test_context_manager_flushes_at_the_end_and_stops() -> None:
    store = MemoryStore()
    engine = RiskEngine(secret=SECRET, store=store)
    async with engine.flushing(3600.0) as same:
        assert same is engine
        await engine.assess(login(0))
        assert await store.global_counts("net") == {}
    assert (await store.global_counts("net"))[""] == 1.0
    assert engine._flusher is None


async def test_configured_engine_starts_flushing_on_its_first_login() -> None:
    store = MemoryStore()
    engine = RiskEngine(RiskConfig(flush_every=60.0), secret=SECRET, store=store)
    assert engine._flusher is None
    await engine.assess(login(0))
    task = engine._flusher
    assert task is not None and not task.done()
    await engine.aclose()
    assert task.done() and (await store.global_counts("net"))[""] == 1.0
    # After shutdown a stray login does not start a new flusher.
    await engine.assess(login(1))
    assert engine._flusher is None
    # Without a store there is nothing to flush and no task.
    bare = RiskEngine(RiskConfig(flush_every=60.0), secret=SECRET)
    await bare.assess(login(0))
    assert bare._flusher is None


@pytest.mark.parametrize("every", [0.0, -1.0, None])
async def test_bad_intervals_are_refused(every: float | None) -> None:
    engine = RiskEngine(secret=SECRET, store=MemoryStore())
    with pytest.raises(ValueError):
        engine.start_flushing(every)
    assert engine._flusher is None
