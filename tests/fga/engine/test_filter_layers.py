"""The RAG filter's layer reads: ``read_objects_tuples`` (many objects, optionally only the rows a user can
use) on every datastore, and the set-at-a-time filter built on it agreeing with Check on SQLite and
PostgreSQL, with contextual tuples, and when a type's objects are too big to read whole."""

from __future__ import annotations

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


async def _stores(database: Database) -> list[tuple[object, str]]:
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
        read = ds.read_objects_tuples  # type: ignore[attr-defined]
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
    sets = FGAService(ds, config=EngineConfig(filter_reverse_budget=0, object_prefetch=prefetch))
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
