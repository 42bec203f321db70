"""The RAG filter's link index (engine/links.py) on real SQLite and PostgreSQL: it must never answer from
before a committed write, whichever process made it, nor survive a model change or a store's deletion
wrongly, and it must stay within its bound. Every answer is compared with per-object Check."""

from __future__ import annotations

from typing import Any

import pytest

from tessera.core.clock import Clock
from tessera.fga.engine.links import LinkIndexes
from tessera.fga.engine.service import CheckRequest, EngineConfig, FGAService, FilterRequest
from tessera.fga.engine.tuples import TupleKey
from tessera.fga.language import transform_dsl_to_json
from tessera.fga.sql.store import SQLDatastore
from tessera.storage.database import Database
from tests.fga.engine.helpers import tk

MODEL = """model
  schema 1.1
type user
type team
  relations
    define member: [user, team#member]
type org
  relations
    define member: [user]
type repo
  relations
    define reader: [user, team#member, org#member]
type document
  relations
    define repo: [repo]
    define viewer: [user, user:*, team#member] or reader from repo
"""

# The same types with another way in: documents also readable by the repo's owner team.
MODEL_2 = """model
  schema 1.1
type user
type team
  relations
    define member: [user, team#member]
type repo
  relations
    define reader: [user, team#member]
    define owner: [team]
type document
  relations
    define repo: [repo]
    define viewer: [user, team#member] or reader from repo or member from owner_team
    define owner_team: [team]
"""

DOCS = [f"document:d{i}" for i in range(12)]


def _graph() -> list[TupleKey]:
    out = [tk("team:t1", "member", "team:t2#member"), tk("team:t2", "member", "user:ann")]
    out += [tk(f"document:d{i}", "repo", f"repo:r{i % 4}") for i in range(12)]
    out += [tk("repo:r0", "reader", "team:t1#member"), tk("repo:r1", "reader", "user:bob")]
    out += [tk("document:d5", "viewer", "team:t2#member")]
    return out


async def _expected(svc: FGAService, sid: str, user: str) -> list[str]:
    out = []
    for doc in DOCS:
        req = CheckRequest(sid, TupleKey(doc, "viewer", user), consistency="HIGHER_CONSISTENCY")
        if (await svc.check(req)).allowed:
            out.append(doc)
    return out


async def _filter(svc: FGAService, sid: str, user: str, consistency: Any = "HIGHER_CONSISTENCY") -> list[str]:
    return await svc.filter_objects(FilterRequest(sid, user, "viewer", DOCS, consistency=consistency))


async def _agree(svc: FGAService, check: FGAService, sid: str) -> list[str]:
    got = await _filter(svc, sid, "user:ann")
    assert got == await _expected(check, sid, "user:ann")
    assert await _filter(svc, sid, "user:bob") == await _expected(check, sid, "user:bob")
    return got


async def _setup(database: Database) -> tuple[SQLDatastore, FGAService, str]:
    ds = SQLDatastore(database, Clock())
    svc = FGAService(ds)
    sid = (await svc.create_store("links")).id
    await svc.write_authorization_model(sid, transform_dsl_to_json(MODEL))
    await svc.write(sid, _graph())
    return ds, svc, sid


async def test_index_answers_like_check_and_follows_writes_of_another_process(database: Database) -> None:
    ds, svc, sid = await _setup(database)
    # Another process on the same database: its own datastore (own connections) and service.
    other_ds = SQLDatastore(database, Clock())
    other = FGAService(other_ds)
    try:
        got = await _agree(svc, svc, sid)
        assert got == ["document:d0", "document:d4", "document:d5", "document:d8"]
        idx = svc.links.peek(sid)
        assert idx is not None and idx.size > 0  # the answer came with the index built
        # A write through the other process: a new link, a new set grant, a new membership.
        await other.write(
            sid,
            [
                tk("repo:r2", "reader", "team:t2#member"),
                tk("document:d3", "repo", "repo:r0"),
                tk("team:t1", "member", "user:bob"),
            ],
        )
        got = await _agree(svc, other, sid)
        assert {"document:d2", "document:d3", "document:d6"} <= set(got)
        assert "document:d0" in await _filter(svc, sid, "user:bob")
        # Deletes through the other process: the grant that gave d0, d4, d8 and the membership.
        await other.write(
            sid, deletes=[tk("repo:r0", "reader", "team:t1#member"), tk("team:t1", "member", "user:bob")]
        )
        got = await _agree(svc, other, sid)
        assert "document:d4" not in got and "document:d0" not in await _filter(svc, sid, "user:bob")
        assert idx is svc.links.peek(sid)  # caught up, never rebuilt
    finally:
        await other_ds.aclose()
        await ds.aclose()


async def test_wildcard_grants_are_kept_like_set_grants(database: Database) -> None:
    ds, svc, sid = await _setup(database)
    other_ds = SQLDatastore(database, Clock())
    other = FGAService(other_ds)
    try:
        await _agree(svc, svc, sid)
        await other.write(sid, [tk("document:d9", "viewer", "user:*")])
        assert "document:d9" in await _agree(svc, other, sid)
        assert "document:d9" in await _filter(svc, sid, "user:zed")  # anyone
        idx = svc.links.peek(sid)
        assert idx is not None and "d9" in idx.sets["document"]["user:*"]
        await other.write(sid, deletes=[tk("document:d9", "viewer", "user:*")])
        assert "document:d9" not in await _agree(svc, other, sid)
        assert "user:*" not in idx.sets["document"]
    finally:
        await other_ds.aclose()
        await ds.aclose()


async def test_grants_to_a_kind_resolved_forwards_follow_writes_and_deletes(database: Database) -> None:
    """``org#member`` is not a nesting kind and few orgs hold grants, so the filter resolves membership in
    them forwards from the index's list of the kind's sets with grants: a set added or emptied by another
    process must show at once."""
    ds, svc, sid = await _setup(database)
    other_ds = SQLDatastore(database, Clock())
    other = FGAService(other_ds)
    try:
        await other.write(sid, [tk("org:o1", "member", "user:bob")])
        assert "document:d3" not in await _filter(svc, sid, "user:bob")
        await other.write(sid, [tk("repo:r3", "reader", "org:o1#member")])
        await _agree(svc, other, sid)
        assert "document:d3" in await _filter(svc, sid, "user:bob")
        idx = svc.links.peek(sid)
        assert idx is not None and "org:o1#member" in idx.kind_users["repo"]["org#member"]
        await other.write(sid, deletes=[tk("repo:r3", "reader", "org:o1#member")])
        assert "document:d3" not in await _filter(svc, sid, "user:bob")
        assert "org:o1#member" not in idx.kind_users["repo"]["org#member"]
        await _agree(svc, other, sid)
    finally:
        await other_ds.aclose()
        await ds.aclose()


async def test_concurrent_filters_all_see_a_write_made_before_them(database: Database) -> None:
    import asyncio

    ds, svc, sid = await _setup(database)
    other_ds = SQLDatastore(database, Clock())
    other = FGAService(other_ds)
    try:
        await _agree(svc, svc, sid)
        for i, repo in enumerate(("repo:r1", "repo:r2", "repo:r3")):
            await other.write(sid, [tk(repo, "reader", "team:t2#member")])
            # Requests waiting on one another's catch-up: each must still see the write before it.
            got = await asyncio.gather(*(_filter(svc, sid, "user:ann") for _ in range(6)))
            assert all(f"document:d{i + 1}" in g for g in got), got
    finally:
        await other_ds.aclose()
        await ds.aclose()


async def test_minimize_latency_may_lag_another_process_but_not_its_own_writes(database: Database) -> None:
    ds, svc, sid = await _setup(database)
    other_ds = SQLDatastore(database, Clock())
    other = FGAService(other_ds)
    try:
        assert "document:d1" not in await _filter(svc, sid, "user:ann", "MINIMIZE_LATENCY")
        await other.write(sid, [tk("repo:r1", "reader", "team:t1#member")])
        # Within the metadata TTL the index may be as it was for MINIMIZE_LATENCY...
        assert "document:d1" not in await _filter(svc, sid, "user:ann", "MINIMIZE_LATENCY")
        # ... never for HIGHER_CONSISTENCY, and never after this process's own write.
        assert "document:d1" in await _filter(svc, sid, "user:ann")
        await other.write(sid, deletes=[tk("repo:r1", "reader", "team:t1#member")])
        await svc.write(sid, [tk("repo:r3", "reader", "team:t2#member")])
        got = await _filter(svc, sid, "user:ann", "MINIMIZE_LATENCY")
        assert "document:d3" in got and "document:d1" not in got
    finally:
        await other_ds.aclose()
        await ds.aclose()


async def test_bulk_loaded_tuples_without_changelog_are_in_the_index(database: Database) -> None:
    ds = SQLDatastore(database, Clock())
    try:
        svc = FGAService(ds)
        sid = (await svc.create_store("bulk")).id
        await svc.write_authorization_model(sid, transform_dsl_to_json(MODEL))
        # bulk_load writes no changelog entries: the index must come from a scan, not from the log.
        await ds.bulk_load(sid, _graph())
        await _agree(svc, svc, sid)
        await svc.write(sid, [tk("document:d1", "viewer", "team:t1#member")])
        assert "document:d1" in await _agree(svc, svc, sid)
    finally:
        await ds.aclose()


async def test_a_new_model_adds_its_slices_and_old_tuples_follow_the_new_types(database: Database) -> None:
    ds, svc, sid = await _setup(database)
    other_ds = SQLDatastore(database, Clock())
    other = FGAService(other_ds)
    try:
        await _agree(svc, svc, sid)
        idx = svc.links.peek(sid)
        assert idx is not None and ("document", "owner_team") not in idx.links
        # Another process writes a model with a new tupleset relation, then a tuple on it.
        await other.write_authorization_model(sid, transform_dsl_to_json(MODEL_2))
        await other.write(sid, [tk("document:d7", "owner_team", "team:t2")])
        svc._latest.clear()  # the metadata TTL passed: this process sees the new latest model
        got = await _agree(svc, other, sid)
        assert "document:d7" in got
        assert ("document", "owner_team") in idx.links and svc.links.peek(sid) is idx
        # The old model still answers as before, from the same index (rows admitted per model).
        first = (await svc.read_authorization_models(sid))[0][-1].id
        old = FilterRequest(sid, "user:ann", "viewer", DOCS, authorization_model_id=first)
        assert "document:d7" not in await svc.filter_objects(old)
    finally:
        await other_ds.aclose()
        await ds.aclose()


async def test_a_store_deleted_by_another_process_drops_its_index(database: Database) -> None:
    ds, svc, sid = await _setup(database)
    other_ds = SQLDatastore(database, Clock())
    other = FGAService(other_ds)
    try:
        assert await _agree(svc, svc, sid)
        assert svc.links.peek(sid) is not None
        await other.delete_store(sid)
        # This process still believes in the store (metadata TTL), but its index must not answer.
        assert await _filter(svc, sid, "user:ann") == []
        assert svc.links.peek(sid) is None
    finally:
        await other_ds.aclose()
        await ds.aclose()


async def test_a_store_over_the_bound_is_filtered_from_storage(database: Database) -> None:
    ds = SQLDatastore(database, Clock())
    try:
        svc = FGAService(ds, config=EngineConfig(filter_index_max=10))
        sid = (await svc.create_store("bound")).id
        await svc.write_authorization_model(sid, transform_dsl_to_json(MODEL))
        await svc.write(sid, _graph())  # 12 links, 3 userset tuples: over 10
        await _agree(svc, svc, sid)
        assert svc.links.peek(sid) is None
        # A store under the bound that grows over it through writes loses its index at the next request.
        grow = FGAService(ds, config=EngineConfig(filter_index_max=16))
        await _agree(grow, grow, sid)
        idx = grow.links.peek(sid)
        assert idx is not None and idx.size == 15  # 12 links, 2 grants to teams, 1 team in a team
        await grow.write(sid, [tk(f"document:e{i}", "repo", "repo:r0") for i in range(5)])
        await _agree(grow, grow, sid)
        assert grow.links.peek(sid) is None
    finally:
        await ds.aclose()


async def test_catch_up_asks_again_for_numbers_skipped_by_an_uncommitted_writer(database: Database) -> None:
    """PostgreSQL takes sequence numbers before commit: a change numbered below the last one applied can
    commit later. Simulated by hiding a change from the first catch-up."""
    ds, svc, sid = await _setup(database)
    try:
        await _agree(svc, svc, sid)
        idx = svc.links.peek(sid)
        assert idx is not None
        await svc.write(sid, [tk("repo:r3", "reader", "team:t2#member")])
        await svc.write(sid, [tk("repo:r2", "reader", "team:t2#member")])
        read = ds.read_changes_after
        hidden = idx.seq + 1

        async def without_first(store_id: str, seq: int, limit: int, also: Any = ()) -> Any:
            alive, head, rows = await read(store_id, seq, limit, also)
            return alive, head, [r for r in rows if r[0] != hidden or hidden in also]

        ds.read_changes_after = without_first  # type: ignore[method-assign]
        indexes = LinkIndexes(1000)
        ts = await svc.typesystem(sid)
        first = await indexes.current(ds, sid, ts)
        assert first is not None
        # A build scans the tuples, so it has both; catching up from before the hidden one shows the gap.
        first.seq = hidden - 1
        first.apply((0, "repo", "r3", "reader", "team:t2#member", True, None, None))
        first.apply((0, "repo", "r2", "reader", "team:t2#member", True, None, None))
        first.checked = 0.0
        again = await indexes.current(ds, sid, ts)
        assert again is first and hidden in first.gaps
        assert "r2" in first.sets["repo"]["team:t2#member"]
        ds.read_changes_after = read  # type: ignore[method-assign]
        await indexes.current(ds, sid, ts)
        assert hidden not in first.gaps and "r3" in first.sets["repo"]["team:t2#member"]
    finally:
        await ds.aclose()


@pytest.mark.parametrize("tuples", [2_000])
async def test_index_memory_is_bounded_by_its_tuples(database: Database, tuples: int) -> None:
    import tracemalloc

    ds = SQLDatastore(database, Clock())
    try:
        svc = FGAService(ds)
        sid = (await svc.create_store("memory")).id
        await svc.write_authorization_model(sid, transform_dsl_to_json(MODEL))
        await ds.bulk_load(sid, (tk(f"document:d{i}", "repo", f"repo:r{i % 50}") for i in range(tuples)))
        await ds.bulk_load(sid, (tk(f"repo:r{i}", "reader", f"team:t{i % 7}#member") for i in range(tuples)))
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        idx = await svc.links.current(ds, sid, await svc.typesystem(sid))
        used = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert idx is not None and idx.size == 2 * tuples
        # Interned ids and users, no tuple objects for rows without a condition: well under 300 bytes each.
        assert used < 300 * idx.size, used
    finally:
        await ds.aclose()


def _chain_model(length: int) -> str:
    """``doc#r0`` computed from ``r1``, ... ``r<length>``, each also direct, and ``folder#f0`` likewise
    reached through a tupleset: the depth limit (25) is met on the long chains, not on the short."""
    lines = ["model", "  schema 1.1", "type user", "type folder", "  relations"]
    lines += [f"    define f{i}: [user] or f{i + 1}" for i in range(length)] + [
        f"    define f{length}: [user]"
    ]
    lines += ["type doc", "  relations", "    define parent: [folder]"]
    lines += [f"    define r{i}: [user] or r{i + 1}" for i in range(length)]
    lines += [f"    define r{length}: [user] or f0 from parent"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("length", [6, 12, 30])
async def test_filter_meets_the_depth_limit_where_check_does(database: Database, length: int) -> None:
    from tessera.fga.engine.errors import FGAError

    ds = SQLDatastore(database, Clock())
    try:
        svc = FGAService(ds)
        sid = (await svc.create_store("chain")).id
        await svc.write_authorization_model(sid, transform_dsl_to_json(_chain_model(length)))
        docs = [f"doc:d{i}" for i in range(6)]
        await svc.write(
            sid,
            [
                tk("doc:d0", "r0", "user:a"),
                tk("doc:d1", "r3", "user:a"),
                tk("doc:d2", f"r{length}", "user:a"),
                tk("doc:d3", "parent", "folder:x"),
                tk("folder:x", "f2", "user:a"),
                tk("doc:d4", "parent", "folder:y"),
                tk("folder:y", f"f{length}", "user:a"),
            ],
        )
        for user in ("user:a", "user:b"):
            allowed, errors = [], set()
            for doc in docs:
                try:
                    req = CheckRequest(sid, TupleKey(doc, "r0", user), consistency="HIGHER_CONSISTENCY")
                    if (await svc.check(req)).allowed:
                        allowed.append(doc)
                except FGAError as exc:
                    errors.add(exc.code)
            # Every strategy: the default walks from the user's side when set at a time meets the limit,
            # and must not answer "no" for the candidates it does not reach where Check fails.
            for config in (
                EngineConfig(),
                EngineConfig(filter_index_max=0),
                EngineConfig(filter_reverse_budget=0),
                EngineConfig(filter_reverse_budget=0, filter_index_max=0),
            ):
                fsvc = FGAService(ds, config=config)
                req = FilterRequest(sid, user, "r0", docs, consistency="HIGHER_CONSISTENCY")
                if errors:
                    with pytest.raises(FGAError) as failed:
                        await fsvc.filter_objects(req)
                    assert failed.value.code in errors
                else:
                    assert await fsvc.filter_objects(req) == allowed, (user, length, config)
            if length == 6:
                assert not errors and (user == "user:b" or len(allowed) == 5)
    finally:
        await ds.aclose()


_FOLDERS = """
model
  schema 1.1
type user
type folder
  relations
    define parent: [folder]
    define viewer: [user] or viewer from parent
type doc
  relations
    define parent: [folder]
    define viewer: [user] or viewer from parent
"""


@pytest.mark.parametrize("length", [10, 30])
async def test_filter_on_a_cyclic_model_meets_the_depth_limit_where_check_does(
    database: Database, length: int
) -> None:
    """Folders in folders (a cycle: no set-at-a-time evaluation, the walk from the user's side answers):
    a document under a chain of 30 folders makes Check fail on the depth limit for a user with no tuples at
    all, and for a user granted at the top; under 10 it answers."""
    from tessera.fga.engine.errors import FGAError

    ds = SQLDatastore(database, Clock())
    try:
        svc = FGAService(ds)
        sid = (await svc.create_store("folders")).id
        await svc.write_authorization_model(sid, transform_dsl_to_json(_FOLDERS))
        chain = [tk(f"folder:f{i + 1}", "parent", f"folder:f{i}") for i in range(length)]
        await svc.write(
            sid,
            [
                *chain,
                tk("doc:deep", "parent", f"folder:f{length}"),
                tk("doc:top", "parent", "folder:f0"),
                tk("folder:f0", "viewer", "user:a"),
                tk("doc:own", "viewer", "user:a"),
            ],
        )
        docs = ["doc:own", "doc:top", "doc:deep", "doc:none"]
        for user in ("user:a", "user:b"):
            allowed, errors = [], set()
            for doc in docs:
                try:
                    req = CheckRequest(sid, TupleKey(doc, "viewer", user), consistency="HIGHER_CONSISTENCY")
                    if (await svc.check(req)).allowed:
                        allowed.append(doc)
                except FGAError as exc:
                    errors.add(exc.code)
            assert bool(errors) == (length == 30), (user, allowed)
            for config in (
                EngineConfig(),
                EngineConfig(filter_index_max=0),
                EngineConfig(filter_reverse_budget=0),
            ):
                fsvc = FGAService(ds, config=config)
                req = FilterRequest(sid, user, "viewer", docs, consistency="HIGHER_CONSISTENCY")
                if errors:
                    with pytest.raises(FGAError) as failed:
                        await fsvc.filter_objects(req)
                    assert failed.value.code in errors, (user, length, config)
                else:
                    assert await fsvc.filter_objects(req) == allowed, (user, length, config)
    finally:
        await ds.aclose()


def _grants_both_ways_agree(idx: Any) -> None:
    """The index's two layouts of set grants (per set, per object) hold the same grants."""
    for otype, by_user in idx.sets.items():
        per_set = sorted(
            (oid, user, str(g))
            for user, grants in by_user.items()
            for oid, held in grants.items()
            for g in (held if isinstance(held, list) else [held])
        )
        flat = idx.set_objects.get(otype, {})
        per_object = sorted(
            (oid, pairs[k], str(pairs[k + 1])) for oid, pairs in flat.items() for k in range(0, len(pairs), 2)
        )
        assert per_set == per_object, otype
        assert idx.set_pairs.get(otype, 0) == len(per_object), otype


async def test_a_user_in_many_sets_is_answered_from_the_objects_side_across_writes(
    database: Database,
) -> None:
    """Ann is in twelve teams (t12 nested up to t1): more sets than a repository holds grants, so a layer's
    grants are looked up per candidate repository (LinkIndex.set_objects) instead of per set; that layout
    follows another process's writes and deletes like the other."""
    ds, svc, sid = await _setup(database)
    other_ds = SQLDatastore(database, Clock())
    other = FGAService(other_ds)
    try:
        chain = [tk(f"team:t{i}", "member", f"team:t{i + 1}#member") for i in range(2, 12)]
        await svc.write(
            sid, [*chain, tk("team:t12", "member", "user:ann"), tk("repo:r3", "reader", "team:t7#member")]
        )
        got = await _agree(svc, svc, sid)
        assert {"document:d0", "document:d3", "document:d5"} <= set(got)
        idx = svc.links.peek(sid)
        assert idx is not None
        _grants_both_ways_agree(idx)
        per_object = 1 + idx.set_pairs["repo"] / len(idx.set_objects["repo"])
        assert per_object < 12  # the objects' side is the one taken
        await other.write(
            sid,
            [tk("repo:r2", "reader", "team:t9#member"), tk("repo:r2", "reader", "team:t4#member")],
            deletes=[tk("repo:r3", "reader", "team:t7#member")],
        )
        got = await _agree(svc, other, sid)
        assert "document:d2" in got and "document:d3" not in got
        _grants_both_ways_agree(idx)
        await other.write(sid, deletes=[tk("repo:r2", "reader", "team:t9#member")])
        assert "document:d2" in await _agree(svc, other, sid)
        await other.write(sid, deletes=[tk("repo:r2", "reader", "team:t4#member")])
        assert "document:d2" not in await _agree(svc, other, sid)
        _grants_both_ways_agree(idx)
        assert idx is svc.links.peek(sid)
    finally:
        await other_ds.aclose()
        await ds.aclose()
