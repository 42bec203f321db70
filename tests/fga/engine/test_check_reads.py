"""Check's reads of objects too big to prefetch whole (an organisation with thousands of members): only the
big relations go relation by relation, the others come in one read; small sets of a shallow kind
(``organization#member``) are resolved forwards in an uncached Check instead of walking back from the user.
Answers must be exactly those of the plain forward walk, on the memory store and on SQL."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import pytest

from tessera.core.clock import Clock
from tessera.fga.engine.memory import MemoryDatastore
from tessera.fga.engine.service import EngineConfig, FGAService
from tessera.fga.engine.tuples import TupleKey
from tessera.fga.engine.typesystem import TypeSystem
from tessera.fga.language import transform_dsl_to_json
from tessera.fga.sql.store import SQLDatastore
from tessera.storage.database import Database
from tessera.storage.migrate import upgrade
from tests.fga.engine.helpers import allowed, tk

MODEL = """model
  schema 1.1
type user
type team
  relations
    define member: [user, team#member]
type organization
  relations
    define owner: [user]
    define member: [user, team#member] or owner
    define repo_admin: [user, organization#member]
    define repo_reader: [user, organization#member]
type repo
  relations
    define owner: [organization]
    define admin: [user, team#member] or repo_admin from owner
    define reader: [user, team#member] or admin or repo_reader from owner
"""

PREFETCH = 20  # tuples of one object prefetched at most; the organisations below hold more members


class Counting(MemoryDatastore):
    """The memory store, recording the resolver's storage calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    async def read_by_objects(
        self, store_id: str, object_type: str, relation: str, object_ids: Sequence[str], **kw
    ):
        self.calls.append(f"by_objects {object_type}#{relation}")
        return await super().read_by_objects(store_id, object_type, relation, object_ids, **kw)

    async def read_object_tuples(self, store_id: str, obj: str, limit: int, **kw):
        self.calls.append(f"object {obj} {sorted(kw.get('relations') or ['*'])}")
        return await super().read_object_tuples(store_id, obj, limit, **kw)

    async def read_by_users(self, store_id: str, object_type: str, relation: str, users: Sequence[str]):
        self.calls.append(f"by_users {object_type}#{relation}")
        return await super().read_by_users(store_id, object_type, relation, users)


def _tuples(seed: int) -> list[TupleKey]:
    rnd = random.Random(seed)
    out = [tk(f"team:t{i}", "member", f"team:t{i // 3}#member") for i in range(1, 12)]
    for u in range(30):
        for _ in range(2):
            out.append(tk(f"team:t{rnd.randrange(12)}", "member", f"user:u{u}"))
    for o in range(3):
        out.append(tk(f"organization:o{o}", "owner", f"user:u{rnd.randrange(30)}"))
        out.append(tk(f"organization:o{o}", "repo_reader", f"organization:o{o}#member"))
        if o == 1:
            out.append(tk(f"organization:o{o}", "repo_admin", f"organization:o{o}#member"))
        # More members than a prefetch takes: the organisation type has a big relation.
        for u in rnd.sample(range(100, 160), 40):
            out.append(tk(f"organization:o{o}", "member", f"user:x{u}"))
        for u in rnd.sample(range(30), 4):
            out.append(tk(f"organization:o{o}", "member", f"user:u{u}"))
        out.append(tk(f"organization:o{o}", "member", f"team:t{rnd.randrange(12)}#member"))
    for r in range(12):
        out.append(tk(f"repo:r{r}", "owner", f"organization:o{r % 3}"))
        if rnd.random() < 0.4:
            out.append(tk(f"repo:r{r}", rnd.choice(["reader", "admin"]), f"team:t{rnd.randrange(12)}#member"))
        if rnd.random() < 0.3:
            out.append(tk(f"repo:r{r}", "reader", f"user:u{rnd.randrange(30)}"))
    return list(dict.fromkeys(out))


async def _write(svc: FGAService, store_id: str, tuples: list[TupleKey]) -> None:
    for i in range(0, len(tuples), 100):
        await svc.write(store_id, tuples[i : i + 100])


async def _services(ds: object) -> tuple[FGAService, FGAService, str]:
    fast = FGAService(ds, config=EngineConfig(object_prefetch=PREFETCH))  # type: ignore[arg-type]
    forward_only = FGAService(ds, config=EngineConfig(closure_max_facts=0, object_prefetch=0))  # type: ignore[arg-type]
    store = await fast.create_store("reads")
    await fast.write_authorization_model(store.id, transform_dsl_to_json(MODEL))
    return fast, forward_only, store.id


async def _agree(fast: FGAService, forward_only: FGAService, store_id: str) -> int:
    differences = []
    positives = 0
    kw = {"consistency": "HIGHER_CONSISTENCY"}
    for u in range(30):
        for r in range(12):
            for rel in ("reader", "admin"):
                a = await allowed(fast, store_id, f"repo:r{r}", rel, f"user:u{u}", **kw)
                b = await allowed(forward_only, store_id, f"repo:r{r}", rel, f"user:u{u}", **kw)
                positives += a
                if a != b:
                    differences.append((u, r, rel, a, b))
    assert not differences
    return positives


def test_shallow_kinds() -> None:
    ts = TypeSystem.from_json(transform_dsl_to_json(MODEL))
    assert ts.shallow("organization", "member")  # [user, team#member] or owner: on the one object
    assert ts.shallow("organization", "owner")
    assert not ts.shallow("repo", "reader")  # follows the owner organisation
    assert not ts.shallow("organization", "repo_reader")  # organization#member is not a nesting kind


@pytest.mark.parametrize("seed", range(3))
async def test_big_relations_and_forward_sets_agree_with_the_forward_walk(seed: int) -> None:
    ds = Counting()
    fast, forward_only, store_id = await _services(ds)
    await _write(fast, store_id, _tuples(seed))
    assert await _agree(fast, forward_only, store_id) > 10
    assert fast._big_relations[(store_id, next(iter(fast._typesystems))[1])] == {"organization": {"member"}}


async def test_an_organisation_costs_one_read_of_its_small_relations_and_one_of_its_members() -> None:
    ds = Counting()
    fast, _, store_id = await _services(ds)
    await _write(fast, store_id, _tuples(0))
    kw = {"consistency": "HIGHER_CONSISTENCY"}
    await allowed(fast, store_id, "repo:r0", "reader", "user:u0", **kw)  # learns that members are many
    ds.calls.clear()
    assert not await allowed(fast, store_id, "repo:r3", "reader", "user:x999", **kw)
    org = [c for c in ds.calls if "organization" in c]
    assert org == [
        "object organization:o0 ['owner', 'repo_admin', 'repo_reader']",
        "by_objects organization#member",  # x999 or one of x999's teams among o0's members: probes
    ], ds.calls
    assert len(ds.calls) <= 5, ds.calls


async def test_a_second_big_relation_is_learnt_on_the_object_that_has_it() -> None:
    ds = Counting()
    fast, forward_only, store_id = await _services(ds)
    tuples = _tuples(1)
    # o2 also has many readers of its own: its small relations no longer fit in one prefetch.
    tuples += [tk("organization:o2", "repo_reader", f"user:x{u}") for u in range(100, 130)]
    await _write(fast, store_id, tuples)
    assert await _agree(fast, forward_only, store_id) > 10
    big = fast._big_relations[(store_id, next(iter(fast._typesystems))[1])]
    assert big == {"organization": {"member", "repo_reader"}}


async def test_contextual_tuples_on_big_and_small_relations() -> None:
    from tessera.fga.engine.service import CheckRequest

    ds = MemoryDatastore()
    fast, forward_only, store_id = await _services(ds)
    await _write(fast, store_id, _tuples(2))
    for ctx, expected in (
        ([tk("organization:o0", "member", "user:new")], True),  # a big relation
        ([tk("organization:o0", "owner", "user:new")], True),  # a small one
        ([tk("organization:o1", "member", "user:new")], False),  # another organisation
    ):
        for svc in (fast, forward_only):
            req = CheckRequest(
                store_id,
                TupleKey("repo:r0", "reader", "user:new"),
                contextual_tuples=ctx,
                consistency="HIGHER_CONSISTENCY",
            )
            assert (await svc.check(req)).allowed is expected


async def test_on_sql(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'reads.db'}")
    await upgrade(db)
    ds = SQLDatastore(db, Clock())
    try:
        fast, forward_only, store_id = await _services(ds)
        await _write(fast, store_id, _tuples(0))
        assert await _agree(fast, forward_only, store_id) > 10
    finally:
        await ds.aclose()
        await db.dispose()
