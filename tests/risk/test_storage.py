"""Storage conformance: the same suite on the in-memory store and on SQLite and PostgreSQL (``database``)."""

from __future__ import annotations

import pytest

from tessera.core.errors import Conflict
from tessera.risk.engine import Outcome, RiskEngine
from tessera.risk.events import LoginEvent
from tessera.risk.model.likelihood import Profile
from tessera.risk.sql import SqlRiskStore
from tessera.risk.store import MemoryStore, RiskStore
from tessera.storage.database import Database

from .conftest import SECRET

T0 = 1_767_225_600.0


async def conformance(store: RiskStore) -> None:
    assert await store.load_profile("nobody") is None
    profile = Profile("alice")
    profile.net.add(("DE", "3320", "84.1.0.0/16", "84.1.1.1"))
    profile.logins = 1
    await store.save_profile(profile)
    assert profile.version == 1
    loaded = await store.load_profile("alice")
    assert loaded is not None and loaded.version == 1
    assert (
        loaded.net.counts == profile.net.counts and loaded.net.kids == profile.net.kids and loaded.logins == 1
    )
    # A second writer with a stale copy loses, and changes nothing.
    stale = await store.load_profile("alice")
    assert stale is not None
    loaded.logins = 2
    await store.save_profile(loaded)
    stale.logins = 99
    with pytest.raises(Conflict):
        await store.save_profile(stale)
    current = await store.load_profile("alice")
    assert current is not None and current.logins == 2 and current.version == 2
    # Creating a profile that another worker created first is a conflict too.
    with pytest.raises(Conflict):
        await store.save_profile(Profile("alice"))
    # Global counts add up atomically; odd paths survive the round trip.
    await store.add_global_counts("net", {"": 2.0, "DE": 2.0, "DE\x1f3320": 1.0})
    await store.add_global_counts("net", {"": 1.0, "DE": 1.0, "NO": 1.0, "ünï'cödé\"; DROP": 1.0})
    assert await store.global_counts("net") == {
        "": 3.0,
        "DE": 3.0,
        "DE\x1f3320": 1.0,
        "NO": 1.0,
        "ünï'cödé\"; DROP": 1.0,
    }
    assert await store.global_counts("agent") == {}
    await store.delete_profile("alice")
    assert await store.load_profile("alice") is None


async def test_memory_store_conforms() -> None:
    await conformance(MemoryStore())


async def test_sql_store_conforms(database: Database) -> None:
    await conformance(SqlRiskStore(database, batch=2))


async def test_engine_state_survives_a_restart(database: Database) -> None:
    events = [
        LoginEvent(
            timestamp=T0 + i * 86400, user_id="bob", ip="84.1.1.1", country="DE", asn=3320, rtt_ms=30.0
        )
        for i in range(15)
    ]
    probe = LoginEvent(
        timestamp=T0 + 20 * 86400, user_id="bob", ip="84.1.1.1", country="DE", asn=3320, rtt_ms=30.0
    )
    reference, first = RiskEngine(secret=SECRET), RiskEngine(secret=SECRET, store=SqlRiskStore(database))
    for engine in (reference, first):
        for event in events:
            assessment = await engine.assess(event)
            await engine.record_outcome(event, assessment, Outcome.ALLOWED)
    expected = await reference.assess(probe)
    await first.aclose()  # flushes the global counts
    second = RiskEngine(secret=SECRET, store=SqlRiskStore(database))
    await second.load()
    again = await second.assess(probe)
    assert again.history_length == 15
    assert abs(again.score - expected.score) < 0.05
    assert again.score < -1  # a familiar login, known only from the database


async def test_cache_is_bounded() -> None:
    from tessera.risk.config import RiskConfig

    engine = RiskEngine(RiskConfig(profile_cache_size=10), secret=SECRET, store=MemoryStore())
    for i in range(50):
        event = LoginEvent(timestamp=T0 + i, user_id=f"user{i}", ip="84.1.1.1", country="DE", asn=3320)
        await engine.record_outcome(event, await engine.assess(event), Outcome.ALLOWED)
    assert engine.cache is not None and len(engine.cache) == 10
    assert (await engine.store.load_profile("user0")).logins == 1  # type: ignore[union-attr]


async def test_two_workers_learning_the_same_user_lose_nothing(database: Database) -> None:
    store_a, store_b = SqlRiskStore(database), SqlRiskStore(database)
    worker_a, worker_b = RiskEngine(secret=SECRET, store=store_a), RiskEngine(secret=SECRET, store=store_b)
    for i in range(6):
        worker = worker_a if i % 2 else worker_b
        event = LoginEvent(
            timestamp=T0 + i * 3600, user_id="shared", ip=f"84.1.1.{i + 1}", country="DE", asn=3320
        )
        # Each worker's cached copy is stale after the other one wrote: the save conflicts, reloads, retries.
        await worker.record_outcome(event, await worker.assess(event), Outcome.ALLOWED)
    stored = await store_a.load_profile("shared")
    assert stored is not None and stored.logins == 6
