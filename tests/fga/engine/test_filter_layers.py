"""The RAG filter's layer reads: ``read_objects_tuples`` (many objects, optionally only the rows a user can
use) on every datastore, and the set-at-a-time filter built on it agreeing with Check on SQLite and
PostgreSQL, with contextual tuples, when a type's objects are too big to read whole, and when a user's own
tuples come from the user's side (documents with many grants each)."""

from __future__ import annotations

from typing import Any

import pytest

from tessera.core.clock import Clock
from tessera.fga.engine.memory import MemoryDatastore
from tessera.fga.engine.service import EngineConfig, FGAService, FilterRequest
from tessera.fga.language import transform_dsl_to_json
from tessera.fga.sql.store import SQLDatastore
from tessera.storage.database import Database
from tests.fga.engine.helpers import allowed, tk
from tests.fga.engine.test_filter_and_lists import ACYCLIC, _acyclic_graph

ROWS = [
    tk("doc:1", "viewer", "user:anne"),
    tk("doc:1", "viewer", "team:a#member"),
    tk("doc:1", "viewer", "team:b#member"),
    tk("doc:1", "parent", "folder:x"),
    tk("doc:2", "editor", "user:bob"),
    tk("doc:2", "viewer", "user:*"),
    tk("doc:3", "viewer", "user:anne"),
]
DOC_MODEL = """model
  schema 1.1
type user
type team
  relations
    define member: [user, team#member]
type folder
  relations
    define viewer: [user]
type doc
  relations
    define parent: [folder]
    define editor: [user]
    define viewer: [user, user:*, team#member] or editor or viewer from parent
"""


async def _stores(database: Database) -> list[tuple[Any, str]]:
    out = []
    for ds in (MemoryDatastore(), SQLDatastore(database, Clock())):
        svc = FGAService(ds)
        sid = (await svc.create_store("layers")).id
        await svc.write_authorization_model(sid, transform_dsl_to_json(DOC_MODEL))
        await svc.write(sid, ROWS)
        out.append((ds, sid))
    return out


def _keys(rows: list | None) -> set[tuple[str, str, str]]:
    assert rows is not None
    return {(k.object, k.relation, k.user) for k in rows}


async def test_read_objects_tuples_on_every_datastore(database: Database) -> None:
    for ds, sid in await _stores(database):
        read = ds.read_objects_tuples
        every = await read(sid, "doc", ["1", "2", "9"], 100)
        assert _keys(every) == {(k.object, k.relation, k.user) for k in ROWS if k.object != "doc:3"}
        assert await read(sid, "doc", ["1", "2"], 5) is None  # 6 tuples: past the limit
        assert await read(sid, "doc", [], 10) == []
        assert await read(sid, "doc", ["9"], 10) == []
        # Only what one user can use: the tupleset relation whole, the user's own and wildcard grants,
        # the usersets of one team, every userset of no kind.
        only = await read(
            sid,
            "doc",
            ["1", "2", "3"],
            100,
            relations=["parent"],
            users=["user:anne", "user:*", "team:a#member"],
            usersets=[],
        )
        assert _keys(only) == {
            ("doc:1", "viewer", "user:anne"),
            ("doc:1", "viewer", "team:a#member"),
            ("doc:1", "parent", "folder:x"),
            ("doc:2", "viewer", "user:*"),
            ("doc:3", "viewer", "user:anne"),
        }
        kinds = await read(sid, "doc", ["1", "2"], 100, usersets=[("team", "member")])
        assert _keys(kinds) == {("doc:1", "viewer", "team:a#member"), ("doc:1", "viewer", "team:b#member")}
        assert await read(sid, "doc", ["1"], 100, relations=[], users=[], usersets=[]) == []
        # A hostile id is data, not SQL.
        assert await read(sid, "doc", ["1' OR '1'='1", "2"], 100, users=["user:bob"]) is not None


@pytest.mark.parametrize("prefetch", [100, 1])
async def test_layered_filter_agrees_with_check_on_sql(database: Database, prefetch: int) -> None:
    # prefetch=1: every type is too big to read whole, so the filter reads relation by relation.
    ds = SQLDatastore(database, Clock())
    svc = FGAService(ds)
    sid = (await svc.create_store("layers")).id
    await svc.write_authorization_model(sid, transform_dsl_to_json(ACYCLIC))
    graph = _acyclic_graph(7)
    for i in range(0, len(graph), 100):
        await svc.write(sid, graph[i : i + 100])
    # Without the link index: the layer reads from storage are what this test is about.
    sets = FGAService(
        ds, config=EngineConfig(filter_reverse_budget=0, object_prefetch=prefetch, filter_index_max=0)
    )
    docs = [f"document:d{d}" for d in range(60)] + ["document:none"]
    positives = 0
    for user in [f"user:u{u}" for u in range(6)] + ["team:t3#member"]:
        for relation in ("viewer", "editor"):
            expected = [
                d
                for d in docs
                if await allowed(svc, sid, d, relation, user, consistency="HIGHER_CONSISTENCY")
            ]
            got = await sets.filter_objects(FilterRequest(sid, user, relation, docs))
            assert got == expected, (user, relation)
            positives += len(got)
    assert positives > 10
    # Contextual tuples on a layer's type: merged exactly as Check merges them.
    ctx = [tk("repo:r0", "admin", "user:u0"), tk("document:d1", "viewer", "user:u5")]
    for user in ("user:u0", "user:u5"):
        expected = [
            d
            for d in docs
            if await allowed(
                svc, sid, d, "viewer", user, contextual_tuples=ctx, consistency="HIGHER_CONSISTENCY"
            )
        ]
        got = await sets.filter_objects(FilterRequest(sid, user, "viewer", docs, contextual_tuples=ctx))
        assert got == expected


DENSE_MODEL = """model
  schema 1.1
type user
type team
  relations
    define member: [user, team#member]
type folder
  relations
    define viewer: [user, team#member]
type doc
  relations
    define parent: [folder]
    define banned: [user]
    define viewer: ([user, user:*, team#member, user with on_network] or viewer from parent) but not banned
condition on_network(ip: ipaddress, cidr: string) {
  ip.in_cidr(cidr)
}
"""


def _dense_graph() -> list:
    """60 documents with 12 grants each (other people's), in 6 folders; anne has a handful of her own,
    one behind a condition, one through her team, one public document and one ban; carl has a grant on
    every document and on 1,000 more."""
    out = [tk("team:eng", "member", "user:anne"), tk("folder:f0", "viewer", "team:eng#member")]
    for d in range(60):
        out.append(tk(f"doc:d{d}", "parent", f"folder:f{d % 6}"))
        out += [tk(f"doc:d{d}", "viewer", f"user:p{(d + i) % 40}") for i in range(12)]
        out.append(tk(f"doc:d{d}", "viewer", "user:carl"))
    out += [
        tk("doc:d1", "viewer", "user:anne"),
        tk("doc:d2", "viewer", "team:eng#member"),
        tk("doc:d3", "viewer", "user:anne", "on_network", {"cidr": "10.0.0.0/8"}),
        tk("doc:d4", "viewer", "user:*"),
        tk("doc:d6", "banned", "user:anne"),  # in folder f0, which her team views
    ]
    return out + [tk(f"doc:x{i}", "viewer", "user:carl") for i in range(1000)]


async def test_own_tuples_from_the_users_side_agree_with_check(database: Database) -> None:
    ds = SQLDatastore(database, Clock())
    svc = FGAService(ds)
    sid = (await svc.create_store("dense")).id
    await svc.write_authorization_model(sid, transform_dsl_to_json(DENSE_MODEL))
    graph = _dense_graph()
    for i in range(0, len(graph), 100):
        await svc.write(sid, graph[i : i + 100])
    own: list[tuple[str, int, bool]] = []
    layers: list[tuple[str, dict]] = []
    users_rows, objects_rows = ds.read_users_rows, ds.read_objects_rows

    async def counted_users(store_id: str, otype: str, rels: list, users: list, limit: int) -> object:
        rows = await users_rows(store_id, otype, rels, users, limit)
        own.append((otype, limit, rows is not None))
        return rows

    async def counted_layers(store_id: str, otype: str, ids: list, limit: int, **kw: object) -> object:
        layers.append((otype, kw))
        return await objects_rows(store_id, otype, ids, limit, **kw)  # type: ignore[arg-type]

    ds.read_users_rows = counted_users  # type: ignore[assignment]
    ds.read_objects_rows = counted_layers  # type: ignore[assignment]
    sets = FGAService(ds, config=EngineConfig(filter_reverse_budget=0, filter_index_max=0))
    docs = [f"doc:d{d}" for d in range(60)] + ["doc:none"]
    context = {"ip": "10.1.2.3"}

    async def expected(user: str, **kw: object) -> list[str]:
        return [
            d
            for d in docs
            if await allowed(
                svc, sid, d, "viewer", user, context=context, consistency="HIGHER_CONSISTENCY", **kw
            )
        ]

    # The first request learns how many tuples a document holds (13 on average) from an unfiltered read.
    assert await sets.filter_objects(FilterRequest(sid, "user:anne", "viewer", docs, context=context)) == (
        await expected("user:anne")
    )
    assert own == [] and layers[0] == ("doc", {})
    # From then on anne's own tuples on documents come from her side (3 probes: her, the wildcard, her
    # team), and the documents' read asks only for their parent links.
    own.clear()
    layers.clear()
    got = await sets.filter_objects(FilterRequest(sid, "user:anne", "viewer", docs, context=context))
    assert got == await expected("user:anne") and "doc:d3" in got and "doc:d6" not in got
    assert own[0][0] == "doc" and own[0][2]
    assert layers[0] == ("doc", {"relations": ["parent"], "users": [], "usersets": []})
    # The condition's parameter missing: an error, as Check's (the user-side row carries the condition).
    with pytest.raises(Exception) as failed:
        await sets.filter_objects(FilterRequest(sid, "user:anne", "viewer", docs))
    assert getattr(failed.value, "code", None) == "validation_error"
    # Contextual tuples on documents: read from the candidates' side, merged as Check merges them.
    ctx = [tk("doc:d7", "viewer", "user:anne"), tk("doc:d1", "banned", "user:anne")]
    got = await sets.filter_objects(
        FilterRequest(sid, "user:anne", "viewer", docs, context=context, contextual_tuples=ctx)
    )
    assert got == await expected("user:anne", contextual_tuples=ctx) and "doc:d7" in got
    # carl has more grants on documents than the budget: his are read from the candidates' side, after
    # a bounded try; after three such requests documents are tried only every 16th request.
    own.clear()
    for _ in range(20):
        assert await sets.filter_objects(FilterRequest(sid, "user:carl", "viewer", docs)) == docs[:60]
    tries = [o for o in own if o[0] == "doc"]
    assert tries and not any(ok for _, _, ok in tries) and len(tries) == 4
