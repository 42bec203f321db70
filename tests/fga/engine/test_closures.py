"""Check's user-side shortcut for usersets (memberships computed backwards from the user) must give exactly
the answers of the plain forward walk: with deep and wide group trees, conditions on memberships, contextual
tuples, cycles, and users in more groups than the shortcut's budget."""

from __future__ import annotations

import random

import pytest

from tessera.fga.engine.memory import MemoryDatastore
from tessera.fga.engine.service import EngineConfig, FGAService
from tessera.fga.language import transform_dsl_to_json
from tests.fga.engine.helpers import allowed, tk

MODEL = """model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member, user with in_hours]
    define banned: [user]
    define active: member but not banned
type document
  relations
    define viewer: [user, group#member, group#active]
condition in_hours(hour: int) {
  hour >= 9 && hour < 17
}
"""


def _tuples(seed: int) -> list:
    rnd = random.Random(seed)
    out = []
    for g in range(1, 60):
        out.append(tk(f"group:g{g}", "member", f"group:g{rnd.randrange(g)}#member"))  # a random tree
    for g in range(0, 60, 7):
        out.append(tk(f"group:g{rnd.randrange(60)}", "member", f"group:g{g}#member"))  # and some cycles
    for u in range(20):
        for _ in range(2):
            g = rnd.randrange(60)
            if rnd.random() < 0.2:
                out.append(tk(f"group:g{g}", "member", f"user:u{u}", "in_hours"))
            else:
                out.append(tk(f"group:g{g}", "member", f"user:u{u}"))
        if rnd.random() < 0.2:
            out.append(tk(f"group:g{rnd.randrange(60)}", "banned", f"user:u{u}"))
    for d in range(30):
        rel = rnd.choice(["member", "active"])
        out.append(tk(f"document:d{d}", "viewer", f"group:g{rnd.randrange(60)}#{rel}"))
    return list(dict.fromkeys(out))


@pytest.mark.parametrize("seed", range(3))
async def test_closure_and_forward_walk_agree(seed: int) -> None:
    ds = MemoryDatastore()
    with_closures = FGAService(ds)
    forward_only = FGAService(ds, config=EngineConfig(closure_max_facts=0, object_prefetch=0))
    store = await with_closures.create_store("c")
    await with_closures.write_authorization_model(store.id, transform_dsl_to_json(MODEL))
    tuples = _tuples(seed)
    for i in range(0, len(tuples), 100):
        await with_closures.write(store.id, tuples[i : i + 100])
    differences = []
    positives = 0
    for u in range(20):
        for d in range(30):
            for hour in (10, 20):
                kw = {"context": {"hour": hour}, "consistency": "HIGHER_CONSISTENCY"}
                a = await allowed(with_closures, store.id, f"document:d{d}", "viewer", f"user:u{u}", **kw)
                b = await allowed(forward_only, store.id, f"document:d{d}", "viewer", f"user:u{u}", **kw)
                positives += a
                if a != b:
                    differences.append((u, d, hour, a, b))
    assert not differences
    assert positives > 20  # the data exercises both answers


async def test_users_in_more_groups_than_the_budget_are_resolved_forwards() -> None:
    ds = MemoryDatastore()
    svc = FGAService(ds, config=EngineConfig(closure_max_facts=10))
    store = await svc.create_store("c")
    await svc.write_authorization_model(store.id, transform_dsl_to_json(MODEL))
    tuples = [tk(f"group:g{i}", "member", "user:busy") for i in range(50)]
    tuples.append(tk("document:1", "viewer", "group:g42#member"))
    await svc.write(store.id, tuples)
    assert await allowed(svc, store.id, "document:1", "viewer", "user:busy")
    assert not await allowed(svc, store.id, "document:2", "viewer", "user:busy")


async def test_condition_on_a_membership_without_its_parameter_is_an_error() -> None:
    from tessera.fga.engine.errors import FGAError

    ds = MemoryDatastore()
    svc = FGAService(ds)
    store = await svc.create_store("c")
    await svc.write_authorization_model(store.id, transform_dsl_to_json(MODEL))
    await svc.write(
        store.id,
        [tk("group:g", "member", "user:x", "in_hours"), tk("document:1", "viewer", "group:g#member")],
    )
    assert await allowed(svc, store.id, "document:1", "viewer", "user:x", context={"hour": 10})
    with pytest.raises(FGAError) as err:
        await allowed(svc, store.id, "document:1", "viewer", "user:x")
    assert "missing parameters" in err.value.message


async def test_answers_that_assumed_a_loop_false_are_not_reused() -> None:
    # c's viewers come from its parent a, whose parent is c: resolving c first meets the loop at c, which
    # counts as false while c is being resolved; a's "false" from then must not be remembered, because c
    # turns out true through its direct tuple.
    from tessera.fga.engine.service import BatchCheckItem, BatchCheckRequest, FilterRequest

    dsl = """model
  schema 1.1
type user
type folder
  relations
    define parent: [folder]
    define direct: [user]
    define viewer: viewer from parent or direct
"""
    ds = MemoryDatastore()
    svc = FGAService(ds, config=EngineConfig(filter_reverse_budget=0))
    store = await svc.create_store("c")
    await svc.write_authorization_model(store.id, transform_dsl_to_json(dsl))
    await svc.write(
        store.id,
        [
            tk("folder:c", "parent", "folder:a"),
            tk("folder:a", "parent", "folder:c"),
            tk("folder:c", "direct", "user:u"),
        ],
    )
    for obj in ("folder:a", "folder:c"):
        assert await allowed(svc, store.id, obj, "viewer", "user:u", consistency="HIGHER_CONSISTENCY")
    out = await svc.batch_check(
        BatchCheckRequest(
            store.id,
            [
                BatchCheckItem(tk("folder:c", "viewer", "user:u"), "c"),
                BatchCheckItem(tk("folder:a", "viewer", "user:u"), "a"),
            ],
        )
    )
    assert out["c"].allowed and out["a"].allowed
    got = await svc.filter_objects(FilterRequest(store.id, "user:u", "viewer", ["folder:c", "folder:a"]))
    assert got == ["folder:c", "folder:a"]


async def test_shared_memo_after_a_loop_gives_the_same_answers() -> None:
    from tessera.fga.engine.check import LocalChecker, Resolution
    from tessera.fga.engine.reader import RequestReader
    from tessera.fga.engine.tuples import User

    dsl = """model
  schema 1.1
type user
type folder
  relations
    define parent: [folder]
    define direct: [user]
    define viewer: viewer from parent or direct
"""
    ds = MemoryDatastore()
    svc = FGAService(ds)
    store = await svc.create_store("c")
    await svc.write_authorization_model(store.id, transform_dsl_to_json(dsl))
    await svc.write(
        store.id,
        [
            tk("folder:c", "parent", "folder:a"),
            tk("folder:a", "parent", "folder:c"),
            tk("folder:c", "direct", "user:u"),
        ],
    )
    ts = await svc.typesystem(store.id)
    res = Resolution(ts, RequestReader(ds, store.id, ts), User("user", "u"))
    checker = LocalChecker()
    assert await checker.resolve(res, "folder", "c", "viewer")
    assert await checker.resolve(res, "folder", "a", "viewer")  # not a remembered "false" from c's loop


async def test_memberships_are_reused_across_requests_until_a_write() -> None:
    from tests.fga.engine.test_filter_and_lists import CountingDatastore

    ds = CountingDatastore()
    svc = FGAService(ds)
    store = await svc.create_store("c")
    await svc.write_authorization_model(store.id, transform_dsl_to_json(MODEL))
    tuples = [tk(f"group:g{i}", "member", f"group:g{i + 1}#member") for i in range(6)]
    tuples += [tk("group:g6", "member", "user:u"), tk("document:1", "viewer", "group:g0#member")]
    tuples += [tk("document:2", "viewer", "group:g3#member"), tk("document:3", "viewer", "group:x#member")]
    await svc.write(store.id, tuples)
    assert await allowed(svc, store.id, "document:1", "viewer", "user:u")
    ds.calls = 0
    assert await allowed(svc, store.id, "document:2", "viewer", "user:u")
    assert ds.calls <= 2  # the document's tuples; the user's groups came from the previous request
    assert not await allowed(svc, store.id, "document:3", "viewer", "user:u")
    await svc.write(store.id, [tk("group:x", "member", "user:u")])
    assert await allowed(svc, store.id, "document:3", "viewer", "user:u")  # the write is seen at once


def test_nesting_index_ancestors_take_the_fewest_steps_and_end_on_cycles() -> None:
    from tessera.fga.engine.check import NestingIndex

    # a -> b -> d, a -> c -> d -> e -> b (a cycle b, d, e), f alone.
    index = NestingIndex({"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": ["e"], "e": ["b"]})
    assert index.ancestors("a") == {"a": 0, "b": 1, "c": 1, "d": 2, "e": 3}
    assert index.ancestors("e") == {"e": 0, "b": 1, "d": 2}
    assert index.ancestors("f") == {"f": 0}
    assert index.ancestors("a") is index.ancestors("a")  # remembered for the next request
