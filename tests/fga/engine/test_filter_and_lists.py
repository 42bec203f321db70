"""The RAG filter (shared sub-results, batched reads) and complete, paged, streamed ListObjects."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from tessera.fga.engine.memory import MemoryDatastore
from tessera.fga.engine.service import EngineConfig, FGAService, FilterRequest, ListObjectsRequest
from tessera.fga.engine.tuples import TupleKey
from tests.fga.engine.helpers import allowed, setup, tk

MODEL = """model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
type folder
  relations
    define parent: [folder]
    define viewer: [user, group#member] or viewer from parent
type document
  relations
    define parent: [folder]
    define owner: [user]
    define restricted: [user]
    define allowed: [user, group#member]
    define viewer: ([user] or owner or viewer from parent) but not restricted
    define editor: owner and allowed
"""


class CountingDatastore(MemoryDatastore):
    """The memory store, counting the resolver's storage calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def read_by_objects(
        self, store_id: str, object_type: str, relation: str, object_ids: Sequence[str], **kw
    ):
        self.calls += 1
        return await super().read_by_objects(store_id, object_type, relation, object_ids, **kw)

    async def read_object_tuples(self, store_id: str, obj: str, limit: int, **kw) -> list[TupleKey] | None:
        self.calls += 1
        return await super().read_object_tuples(store_id, obj, limit, **kw)

    async def read_objects_tuples(
        self, store_id: str, object_type: str, object_ids: Sequence[str], limit: int, **kw
    ):
        self.calls += 1
        return await super().read_objects_tuples(store_id, object_type, object_ids, limit, **kw)

    async def read_by_users(self, store_id: str, object_type: str, relation: str, users: Sequence[str]):
        self.calls += 1
        return await super().read_by_users(store_id, object_type, relation, users)


def _graph(seed: int) -> list[TupleKey]:
    rnd = random.Random(seed)
    tuples = [tk("group:g0", "member", "user:u0"), tk("group:g1", "member", "group:g0#member")]
    for f in range(10):
        if f:
            tuples.append(tk(f"folder:f{f}", "parent", f"folder:f{rnd.randrange(f)}"))
        if rnd.random() < 0.3:
            tuples.append(tk(f"folder:f{f}", "viewer", rnd.choice(["user:u0", "group:g1#member", "user:u1"])))
    for d in range(100):
        tuples.append(tk(f"document:d{d}", "parent", f"folder:f{rnd.randrange(10)}"))
        if rnd.random() < 0.1:
            tuples.append(tk(f"document:d{d}", "restricted", "user:u0"))
        if rnd.random() < 0.1:
            tuples.append(tk(f"document:d{d}", "owner", "user:u0"))
        if rnd.random() < 0.1:
            tuples.append(tk(f"document:d{d}", "allowed", "group:g1#member"))
    return tuples


@pytest.mark.parametrize("reverse_budget", [20_000, 0], ids=["users-side", "candidates-side"])
async def test_filter_agrees_with_check_and_batches_reads(reverse_budget: int) -> None:
    for seed in range(5):
        ds = CountingDatastore()
        svc, sid, _ = await setup(MODEL, _graph(seed), ds=ds)
        fast = FGAService(ds, config=EngineConfig(filter_reverse_budget=reverse_budget))
        docs = [f"document:d{d}" for d in range(100)]
        for relation in ("viewer", "editor"):
            expected = [
                d
                for d in docs
                if await allowed(svc, sid, d, relation, "user:u0", consistency="HIGHER_CONSISTENCY")
            ]
            singles = ds.calls
            ds.calls = 0
            got = await fast.filter_objects(FilterRequest(sid, "user:u0", relation, docs))
            assert got == expected
            # A handful of batched reads per rewrite step, not several per candidate.
            assert ds.calls < 40, (seed, relation, ds.calls, singles)
            assert singles > 3 * ds.calls
            ds.calls = 0


async def test_filter_falls_back_to_the_candidates_side_for_users_who_reach_too_much() -> None:
    tuples = [tk("folder:root", "viewer", "user:admin")]
    tuples += [tk(f"document:d{i}", "parent", "folder:root") for i in range(300)]
    tuples += [tk("document:d7", "restricted", "user:admin")]
    ds = CountingDatastore()
    _svc, sid, _ = await setup(MODEL, tuples, ds=ds)
    small = FGAService(ds, config=EngineConfig(filter_reverse_budget=50))
    docs = ["document:d7", "document:d8", "document:nope"]
    ds.calls = 0
    assert await small.filter_objects(FilterRequest(sid, "user:admin", "viewer", docs)) == ["document:d8"]
    assert ds.calls < 20


async def test_filter_keeps_input_order_and_rejects_unknown_relations() -> None:
    svc, sid, _ = await setup(
        MODEL, [tk("document:b", "owner", "user:x"), tk("document:a", "owner", "user:x")]
    )
    got = await svc.filter_objects(
        FilterRequest(sid, "user:x", "viewer", ["document:b", "document:c", "document:a"])
    )
    assert got == ["document:b", "document:a"]


async def test_list_objects_is_complete_on_a_large_store_and_pages() -> None:
    tuples = [tk("folder:root", "viewer", "user:u")]
    tuples += [
        tk(f"document:d{i:05d}", "parent", "folder:root" if i % 10 == 0 else "folder:other")
        for i in range(20_000)
    ]
    ds = MemoryDatastore()
    svc, sid, _ = await setup(MODEL, tuples, ds=ds)
    resp = await svc.list_objects(ListObjectsRequest(sid, "document", "viewer", "user:u"))
    assert len(resp.objects) == 2_000  # no silent cut at 1000
    assert sorted(resp.objects) == [f"document:d{i:05d}" for i in range(0, 20_000, 10)]
    pages: list[str] = []
    token = ""
    while True:
        page = await svc.list_objects(
            ListObjectsRequest(sid, "document", "viewer", "user:u", page_size=700, continuation_token=token)
        )
        pages.extend(page.objects)
        token = page.continuation_token
        if not token:
            break
    assert pages == sorted(resp.objects)
    streamed = [
        o async for o in svc.streamed_list_objects(ListObjectsRequest(sid, "document", "viewer", "user:u"))
    ]
    assert sorted(streamed) == sorted(resp.objects)


async def test_list_objects_verifies_candidates_from_exclusion_and_intersection() -> None:
    svc, sid, _ = await setup(
        MODEL,
        [
            tk("folder:f", "viewer", "user:u"),
            tk("document:1", "parent", "folder:f"),
            tk("document:2", "parent", "folder:f"),
            tk("document:2", "restricted", "user:u"),
            tk("document:3", "owner", "user:u"),
            tk("document:4", "owner", "user:u"),
            tk("document:4", "allowed", "group:g#member"),
            tk("group:g", "member", "user:u"),
        ],
    )
    viewer = await svc.list_objects(ListObjectsRequest(sid, "document", "viewer", "user:u"))
    assert sorted(viewer.objects) == ["document:1", "document:3", "document:4"]
    editor = await svc.list_objects(ListObjectsRequest(sid, "document", "editor", "user:u"))
    assert editor.objects == ["document:4"]
    # Contextual tuples take part.
    ctx = [tk("document:3", "allowed", "user:u")]
    editor = await svc.list_objects(
        ListObjectsRequest(sid, "document", "editor", "user:u", contextual_tuples=ctx)
    )
    assert sorted(editor.objects) == ["document:3", "document:4"]


ACYCLIC = """model
  schema 1.1
type user
type team
  relations
    define member: [user, team#member]
type org
  relations
    define owner: [user]
    define member: [user, team#member] or owner
    define reader: [user, org#member]
type repo
  relations
    define owner: [org]
    define blocked: [user, team#member]
    define admin: [user, team#member]
    define writer: [user, team#member] or admin
    define reader: ([user, user:*, team#member] or writer or reader from owner) but not blocked
    define triager: writer and reader
type document
  relations
    define repo: [repo]
    define viewer: [user, team#member] or reader from repo
    define editor: triager from repo
"""


def _acyclic_graph(seed: int) -> list[TupleKey]:
    rnd = random.Random(seed)
    out = [tk(f"team:t{i}", "member", f"team:t{rnd.randrange(i)}#member") for i in range(1, 12)]
    out += [tk(f"team:t{rnd.randrange(12)}", "member", f"user:u{u}") for u in range(6) for _ in range(2)]
    for o in range(3):
        out.append(tk(f"org:o{o}", rnd.choice(["owner", "member"]), f"user:u{rnd.randrange(6)}"))
        out.append(tk(f"org:o{o}", "reader", f"org:o{rnd.randrange(3)}#member"))
    for r in range(20):
        out.append(tk(f"repo:r{r}", "owner", f"org:o{rnd.randrange(3)}"))
        for rel in ("blocked", "admin", "writer", "reader"):
            if rnd.random() < 0.3:
                who = rnd.choice([f"user:u{rnd.randrange(6)}", f"team:t{rnd.randrange(12)}#member"])
                out.append(tk(f"repo:r{r}", rel, who))
        if rnd.random() < 0.1:
            out.append(tk(f"repo:r{r}", "reader", "user:*"))
    for d in range(60):
        out.append(tk(f"document:d{d}", "repo", f"repo:r{rnd.randrange(20)}"))
        if rnd.random() < 0.1:
            out.append(tk(f"document:d{d}", "viewer", f"team:t{rnd.randrange(12)}#member"))
    return list(dict.fromkeys(out))


@pytest.mark.parametrize("seed", range(4))
async def test_set_at_a_time_filter_agrees_with_check(seed: int) -> None:
    ds = CountingDatastore()
    svc, sid, _ = await setup(ACYCLIC, _acyclic_graph(seed), ds=ds)
    ts = await svc.typesystem(sid)
    assert ts.set_evaluable("document", "viewer") and ts.set_evaluable("document", "editor")
    sets = FGAService(ds, config=EngineConfig(filter_reverse_budget=0))
    docs = [f"document:d{d}" for d in range(60)] + ["document:none"]
    positives = 0
    for user in [f"user:u{u}" for u in range(6)] + ["team:t3#member"]:
        for relation in ("viewer", "editor"):
            expected = [
                d
                for d in docs
                if await allowed(svc, sid, d, relation, user, consistency="HIGHER_CONSISTENCY")
            ]
            ds.calls = 0
            got = await sets.filter_objects(FilterRequest(sid, user, relation, docs))
            assert got == expected, (user, relation)
            assert ds.calls < 40
            positives += len(got)
    assert positives > 20


@pytest.mark.parametrize(
    "bad",
    [
        "document:d1 x",
        "document:",
        "document:a:b",
        "document:a#b",
        "document:\u00a0",
        "document:" + "d" * 300,
    ],
)
async def test_filter_rejects_a_malformed_object_after_well_formed_ones_as_alone(bad: str) -> None:
    """An object after others of its type (the quick path of filter_objects' parsing) is rejected with the
    error split_object gives it; well-formed ids outside letters and digits are answered as Check answers
    them."""
    from tessera.fga.engine.errors import FGAError
    from tessera.fga.engine.tuples import split_object

    svc, sid, _ = await setup(
        MODEL, [tk("document:d-1", "owner", "user:ann"), tk("document:d2", "owner", "user:ann")]
    )
    with pytest.raises(FGAError) as alone:
        split_object(bad)
    with pytest.raises(FGAError) as by_filter:
        await svc.filter_objects(FilterRequest(sid, "user:ann", "viewer", ["document:d2", bad]))
    assert (by_filter.value.code, str(by_filter.value)) == (alone.value.code, str(alone.value))
    docs = ["document:d2", "document:d-1", "document:d\u00e9", "document:d_3"]
    expected = [d for d in docs if await allowed(svc, sid, d, "viewer", "user:ann")]
    assert await svc.filter_objects(FilterRequest(sid, "user:ann", "viewer", docs)) == expected
    assert expected[:2] == ["document:d2", "document:d-1"]
