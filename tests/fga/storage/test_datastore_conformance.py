"""One conformance suite for every FGA datastore: SQL on SQLite, SQL on PostgreSQL, and the in-memory store.

Each test states a behaviour of the :class:`~tessera.fga.engine.store.Datastore` protocol the engine relies on
(all-or-nothing writes, OpenFGA's duplicate and missing rules, the resolver's lookups, paging that neither
repeats nor skips, the changelog), so the three implementations must agree.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tessera.core.clock import FrozenClock
from tessera.core.ids import new_id
from tessera.fga.engine.errors import ErrorCode, FGAError
from tessera.fga.engine.memory import MemoryDatastore
from tessera.fga.engine.store import ReadFilter
from tessera.fga.engine.tuples import TupleKey
from tessera.fga.sql.store import SQLDatastore
from tessera.storage.database import Database
from tessera.storage.migrate import upgrade
from tests.conftest import _create_pg_database, _drop_pg_database, require_postgres


def tk(obj: str, rel: str, user: str, cond: str | None = None, ctx: dict | None = None) -> TupleKey:
    return TupleKey(object=obj, relation=rel, user=user, condition_name=cond, condition_context=ctx)


def ident(keys: list[TupleKey]) -> set[tuple[str, str, str]]:
    return {(k.object, k.relation, k.user) for k in keys}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), "memory"])
async def ds(request: pytest.FixtureRequest, clock: FrozenClock, tmp_path: Path) -> AsyncIterator[object]:
    if request.param == "memory":
        yield MemoryDatastore(clock)
        return
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'fga.db'}"
    else:
        require_postgres()
        url = await _create_pg_database()
    db = Database(url)
    try:
        await upgrade(db)
        yield SQLDatastore(db, clock)
    finally:
        await db.dispose()
        if request.param == "postgresql":
            await _drop_pg_database(url)


@pytest.fixture
async def store_id(ds: SQLDatastore) -> str:
    sid = new_id()
    await ds.create_store(sid, "conformance")
    return sid


async def test_stores_create_get_list_delete(ds: SQLDatastore, clock: FrozenClock) -> None:
    ids = [new_id() for _ in range(3)]
    for i, sid in enumerate(ids):
        rec = await ds.create_store(sid, f"s{i}")
        assert rec.id == sid and rec.name == f"s{i}"
    got = await ds.get_store(ids[1])
    assert got is not None and got.name == "s1"
    assert got.created_at == datetime.fromtimestamp(clock.now(), UTC)
    assert await ds.get_store(new_id()) is None

    page, token = await ds.list_stores(2, None)
    assert [s.id for s in page] == sorted(ids)[:2] and token
    rest, token2 = await ds.list_stores(2, token)
    assert [s.id for s in rest] == sorted(ids)[2:] and token2 is None
    named, _ = await ds.list_stores(10, None, name="s2")
    assert [s.id for s in named] == [ids[2]]

    await ds.delete_store(ids[0])
    assert await ds.get_store(ids[0]) is None
    listed, _ = await ds.list_stores(10, None)
    assert ids[0] not in {s.id for s in listed}


async def test_models_latest_is_last_written_and_pages_newest_first(ds: SQLDatastore, store_id: str) -> None:
    assert await ds.latest_model(store_id) is None
    # Ids deliberately written out of lexical order: "latest" is the last written, not the largest id.
    model_ids = ["01HZZZZZZZZZZZZZZZZZZZZZZ3", "01HZZZZZZZZZZZZZZZZZZZZZZ1", "01HZZZZZZZZZZZZZZZZZZZZZZ2"]
    for n, mid in enumerate(model_ids):
        model = {"schema_version": "1.1", "type_definitions": [{"type": f"t{n}"}], "conditions": {}}
        await ds.write_model(store_id, mid, model)
    latest = await ds.latest_model(store_id)
    assert latest is not None and latest.id == model_ids[-1]
    assert latest.model["type_definitions"] == [{"type": "t2"}]
    one = await ds.read_model(store_id, model_ids[0])
    assert one is not None and one.model["schema_version"] == "1.1"
    assert await ds.read_model(store_id, "01HZZZZZZZZZZZZZZZZZZZZZZ9") is None

    first, token = await ds.list_models(store_id, 2, None)
    assert [m.id for m in first] == [model_ids[2], model_ids[1]] and token
    second, token2 = await ds.list_models(store_id, 2, token)
    assert [m.id for m in second] == [model_ids[0]] and token2 is None


async def test_assertions_replace_as_a_whole(ds: SQLDatastore, store_id: str) -> None:
    mid = new_id()
    assert await ds.read_assertions(store_id, mid) == []
    a1 = [{"tuple_key": {"object": "doc:1", "relation": "viewer", "user": "user:a"}, "expectation": True}]
    a2 = [{"tuple_key": {"object": "doc:2", "relation": "viewer", "user": "user:b"}, "expectation": False}]
    await ds.write_assertions(store_id, mid, a1)
    await ds.write_assertions(store_id, mid, a2)
    assert await ds.read_assertions(store_id, mid) == a2


async def test_write_then_lookups_by_object_by_user_and_by_userset(ds: SQLDatastore, store_id: str) -> None:
    writes = [
        tk("doc:1", "viewer", "user:anne"),
        tk("doc:1", "viewer", "user:*"),
        tk("doc:1", "viewer", "group:eng#member"),
        tk("doc:1", "viewer", "team:x#member"),
        tk("doc:1", "editor", "user:anne"),
        tk("doc:2", "viewer", "user:anne", "in_office", {"ip": "10.0.0.1"}),
        tk("doc:3", "viewer", "user:bob"),
        tk("folder:1", "viewer", "user:anne"),
    ]
    await ds.write(store_id, [], writes)

    direct = await ds.read_by_objects(
        store_id, "doc", "viewer", ["1", "2", "3"], users=["user:anne", "user:*"]
    )
    assert ident(direct) == {
        ("doc:1", "viewer", "user:anne"),
        ("doc:1", "viewer", "user:*"),
        ("doc:2", "viewer", "user:anne"),
    }
    conditioned = next(k for k in direct if k.object == "doc:2")
    assert conditioned.condition_name == "in_office"
    assert dict(conditioned.condition_context or {}) == {"ip": "10.0.0.1"}

    usersets = await ds.read_by_objects(store_id, "doc", "viewer", ["1"], usersets=[("group", "member")])
    assert ident(usersets) == {("doc:1", "viewer", "group:eng#member")}
    everything = await ds.read_by_objects(store_id, "doc", "viewer", ["1"])
    assert len(everything) == 4
    assert await ds.read_by_objects(store_id, "doc", "viewer", []) == []
    assert await ds.read_by_objects(store_id, "doc", "viewer", ["1"], users=[]) == []

    reverse = await ds.read_by_users(store_id, "doc", "viewer", ["user:anne", "group:eng#member"])
    assert ident(reverse) == {
        ("doc:1", "viewer", "user:anne"),
        ("doc:2", "viewer", "user:anne"),
        ("doc:1", "viewer", "group:eng#member"),
    }
    assert await ds.read_by_users(store_id, "doc", "owner", ["user:anne"]) == []


async def test_stores_do_not_see_each_others_tuples(ds: SQLDatastore, store_id: str) -> None:
    other = new_id()
    await ds.create_store(other, "other")
    await ds.write(store_id, [], [tk("doc:1", "viewer", "user:anne")])
    assert await ds.read_by_objects(other, "doc", "viewer", ["1"]) == []
    assert await ds.read_by_users(other, "doc", "viewer", ["user:anne"]) == []
    page, _ = await ds.read_page(other, ReadFilter(), 10, None)
    assert page == []


async def test_duplicate_write_fails_and_changes_nothing(ds: SQLDatastore, store_id: str) -> None:
    await ds.write(store_id, [], [tk("doc:1", "viewer", "user:anne")])
    rev = await ds.revision(store_id)
    with pytest.raises(FGAError) as err:
        await ds.write(store_id, [], [tk("doc:2", "viewer", "user:anne"), tk("doc:1", "viewer", "user:anne")])
    assert err.value.error_code == ErrorCode.write_failed_due_to_invalid_input
    # All or nothing: doc:2 was not written either, and the changelog did not move.
    assert await ds.read_by_objects(store_id, "doc", "viewer", ["2"]) == []
    assert await ds.revision(store_id) == rev
    changes, _ = await ds.read_changes(store_id, "", 100, None, None)
    assert len(changes) == 1


async def test_on_duplicate_ignore_skips_identical_but_not_a_different_condition(
    ds: SQLDatastore, store_id: str
) -> None:
    await ds.write(store_id, [], [tk("doc:1", "viewer", "user:anne", "c", {"x": 1})])
    await ds.write(store_id, [], [tk("doc:1", "viewer", "user:anne", "c", {"x": 1})], on_duplicate="ignore")
    with pytest.raises(FGAError) as err:
        await ds.write(
            store_id, [], [tk("doc:1", "viewer", "user:anne", "c", {"x": 2})], on_duplicate="ignore"
        )
    assert err.value.error_code == ErrorCode.write_failed_due_to_invalid_input
    changes, _ = await ds.read_changes(store_id, "", 100, None, None)
    assert len(changes) == 1


async def test_missing_delete_fails_unless_ignored(ds: SQLDatastore, store_id: str) -> None:
    await ds.write(store_id, [], [tk("doc:1", "viewer", "user:anne")])
    with pytest.raises(FGAError) as err:
        await ds.write(store_id, [tk("doc:1", "viewer", "user:anne"), tk("doc:9", "viewer", "user:x")], [])
    assert err.value.error_code == ErrorCode.write_failed_due_to_invalid_input
    assert len(await ds.read_by_objects(store_id, "doc", "viewer", ["1"])) == 1  # rolled back
    await ds.write(
        store_id,
        [tk("doc:1", "viewer", "user:anne"), tk("doc:9", "viewer", "user:x")],
        [],
        on_missing="ignore",
    )
    assert await ds.read_by_objects(store_id, "doc", "viewer", ["1"]) == []


async def test_delete_and_rewrite_in_one_request_changes_the_condition(
    ds: SQLDatastore, store_id: str
) -> None:
    await ds.write(store_id, [], [tk("doc:1", "viewer", "user:anne", "c", {"x": 1})])
    await ds.write(
        store_id, [tk("doc:1", "viewer", "user:anne")], [tk("doc:1", "viewer", "user:anne", "d", {"y": 2})]
    )
    (key,) = await ds.read_by_objects(store_id, "doc", "viewer", ["1"])
    assert key.condition_name == "d" and dict(key.condition_context or {}) == {"y": 2}


async def test_read_page_filters_and_pages_without_repeats(ds: SQLDatastore, store_id: str) -> None:
    writes = [tk(f"doc:{i}", "viewer", f"user:u{i % 3}") for i in range(25)]
    writes += [tk("folder:1", "viewer", "user:u0"), tk("doc:0", "editor", "user:u0")]
    await ds.write(store_id, [], writes)

    seen: list[tuple[str, str, str]] = []
    token: str | None = None
    pages = 0
    while True:
        page, token = await ds.read_page(store_id, ReadFilter(object="doc:"), 10, token)
        pages += 1
        seen += [(s.key.object, s.key.relation, s.key.user) for s in page]
        if token is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 26
    assert all(o.startswith("doc:") for o, _, _ in seen)

    by_user, _ = await ds.read_page(store_id, ReadFilter(object="doc:", user="user:u0"), 100, None)
    assert len(by_user) == 10  # doc:0,3,...,24 viewer (9) + doc:0 editor
    exact, _ = await ds.read_page(store_id, ReadFilter(object="doc:0", relation="editor"), 100, None)
    assert ident([s.key for s in exact]) == {("doc:0", "editor", "user:u0")}
    everything, _ = await ds.read_page(store_id, ReadFilter(), 100, None)
    assert len(everything) == 27


async def test_bad_continuation_token_is_invalid_continuation_token(ds: SQLDatastore, store_id: str) -> None:
    for bad in ("not-base64!!", "eyJ4Ijox"):
        with pytest.raises(FGAError) as err:
            await ds.read_page(store_id, ReadFilter(), 10, bad)
        assert err.value.error_code == ErrorCode.invalid_continuation_token


async def test_changelog_order_types_tokens_and_start_time(
    ds: SQLDatastore, store_id: str, clock: FrozenClock
) -> None:
    await ds.write(store_id, [], [tk("doc:1", "viewer", "user:a"), tk("folder:1", "viewer", "user:a")])
    clock.advance(60)
    mark = datetime.fromtimestamp(clock.now(), UTC)
    await ds.write(store_id, [tk("doc:1", "viewer", "user:a")], [tk("doc:2", "viewer", "user:b")])

    changes, token = await ds.read_changes(store_id, "", 100, None, None)
    ops = [(c.key.object, c.operation) for c in changes]
    assert ops == [
        ("doc:1", "TUPLE_OPERATION_WRITE"),
        ("folder:1", "TUPLE_OPERATION_WRITE"),
        ("doc:1", "TUPLE_OPERATION_DELETE"),
        ("doc:2", "TUPLE_OPERATION_WRITE"),
    ]
    assert token  # returned even at the end, for polling
    empty, same = await ds.read_changes(store_id, "", 100, token, None)
    assert empty == [] and same

    docs, dtoken = await ds.read_changes(store_id, "doc", 2, None, None)
    assert [c.key.object for c in docs] == ["doc:1", "doc:1"]
    more, _ = await ds.read_changes(store_id, "doc", 2, dtoken, None)
    assert [c.key.object for c in more] == ["doc:2"]
    with pytest.raises(FGAError) as err:
        await ds.read_changes(store_id, "folder", 2, dtoken, None)
    assert err.value.error_code == ErrorCode.invalid_continuation_token

    later, _ = await ds.read_changes(store_id, "", 100, None, mark)
    assert [c.operation for c in later] == ["TUPLE_OPERATION_DELETE", "TUPLE_OPERATION_WRITE"]
    await ds.write(store_id, [], [tk("doc:3", "viewer", "user:c")])
    polled, _ = await ds.read_changes(store_id, "", 100, token, None)
    assert [c.key.object for c in polled] == ["doc:3"]


async def test_revision_moves_on_every_write(ds: SQLDatastore, store_id: str) -> None:
    r0 = await ds.revision(store_id)
    await ds.write(store_id, [], [tk("doc:1", "viewer", "user:a")])
    r1 = await ds.revision(store_id)
    await ds.write(store_id, [tk("doc:1", "viewer", "user:a")], [])
    r2 = await ds.revision(store_id)
    assert r0 != r1 != r2 and r0 != r2


async def test_sql_revision_is_seen_by_a_second_process(database: Database, clock: FrozenClock) -> None:
    # Two datastores on one database stand for two server processes: a write through one is visible to the
    # other's revision, so neither serves a cached answer from before it.
    a, b = SQLDatastore(database, clock), SQLDatastore(Database(database.url), clock)
    try:
        sid = new_id()
        await a.create_store(sid, "shared")
        before = await b.revision(sid)
        await a.write(sid, [], [tk("doc:1", "viewer", "user:a")])
        assert await b.revision(sid) != before
        assert ident(await b.read_by_objects(sid, "doc", "viewer", ["1"])) == {("doc:1", "viewer", "user:a")}
    finally:
        await b.db.dispose()


async def test_sql_bulk_load_is_read_by_the_lookups(database: Database, clock: FrozenClock) -> None:
    ds = SQLDatastore(database, clock)
    sid = new_id()
    await ds.create_store(sid, "bulk")
    n = await ds.bulk_load(sid, (tk(f"doc:{i}", "viewer", f"user:u{i % 7}") for i in range(2000)), batch=300)
    assert n == 2000
    found = await ds.read_by_users(sid, "doc", "viewer", ["user:u3"])
    assert len(found) == len([i for i in range(2000) if i % 7 == 3])


async def test_read_object_tuples_gives_every_relation_or_none_past_the_limit(
    ds: SQLDatastore, store_id: str
) -> None:
    await ds.write(
        store_id,
        [],
        [
            tk("doc:1", "viewer", "user:a"),
            tk("doc:1", "owner", "group:g#member"),
            tk("doc:2", "viewer", "user:a"),
        ],
    )
    every = await ds.read_object_tuples(store_id, "doc:1", 10)
    assert every is not None and ident(every) == {
        ("doc:1", "viewer", "user:a"),
        ("doc:1", "owner", "group:g#member"),
    }
    assert await ds.read_object_tuples(store_id, "doc:1", 1) is None
    assert await ds.read_object_tuples(store_id, "doc:9", 10) == []


async def test_read_object_tuples_of_some_relations(ds: SQLDatastore, store_id: str) -> None:
    """Only the named relations of the object, and the limit counts only their tuples (Check's read of
    an object whose other relations hold too many tuples)."""
    await ds.write(
        store_id,
        [],
        [
            tk("org:1", "member", "user:a"),
            tk("org:1", "member", "user:b"),
            tk("org:1", "member", "team:t#member"),
            tk("org:1", "owner", "user:a"),
            tk("org:1", "admin", "org:1#member"),
            tk("org:2", "owner", "user:c"),
        ],
    )
    some = await ds.read_object_tuples(store_id, "org:1", 2, relations=["owner", "admin", "unknown"])
    assert some is not None and ident(some) == {
        ("org:1", "owner", "user:a"),
        ("org:1", "admin", "org:1#member"),
    }
    assert await ds.read_object_tuples(store_id, "org:1", 1, relations=["owner", "admin"]) is None
    assert await ds.read_object_tuples(store_id, "org:1", 2, relations=["member"]) is None
    members = await ds.read_object_tuples(store_id, "org:1", 3, relations=["member"])
    assert members is not None and len(members) == 3
    assert await ds.read_object_tuples(store_id, "org:1", 10, relations=[]) == []


async def test_concurrent_writes_of_one_tuple_write_it_once(ds: SQLDatastore, store_id: str) -> None:
    import asyncio

    async def attempt() -> str:
        try:
            await ds.write(store_id, [], [tk("doc:race", "viewer", "user:a")])
        except FGAError as exc:
            return exc.error_code.name
        return "ok"

    outcomes = await asyncio.gather(*(attempt() for _ in range(6)))
    assert sorted(outcomes) == ["ok"] + ["write_failed_due_to_invalid_input"] * 5
    assert len(await ds.read_by_objects(store_id, "doc", "viewer", ["race"])) == 1
    changes, _ = await ds.read_changes(store_id, "", 100, None, None)
    assert len(changes) == 1


async def test_read_objects_tuples_filters_by_relation_user_and_userset(
    ds: SQLDatastore, store_id: str
) -> None:
    await ds.write(
        store_id,
        [],
        [
            tk("doc:1", "parent", "folder:a"),
            tk("doc:1", "viewer", "user:ann"),
            tk("doc:1", "viewer", "group:eng#member"),
            tk("doc:2", "editor", "user:ann"),
            tk("doc:2", "viewer", "user:*"),
            tk("doc:3", "viewer", "user:bob"),
            tk("folder:a", "viewer", "user:ann"),
        ],
    )
    everything = await ds.read_objects_tuples(store_id, "doc", ["1", "2", "9"], 100)
    assert everything is not None and len(everything) == 5
    assert await ds.read_objects_tuples(store_id, "doc", ["1", "2"], 4) is None  # past the limit
    only = await ds.read_objects_tuples(
        store_id,
        "doc",
        ["1", "2", "3"],
        100,
        relations=["parent"],
        users=["user:ann", "user:*"],
        usersets=[("group", "member")],
    )
    assert only is not None and ident(only) == {
        ("doc:1", "parent", "folder:a"),
        ("doc:1", "viewer", "user:ann"),
        ("doc:1", "viewer", "group:eng#member"),
        ("doc:2", "editor", "user:ann"),
        ("doc:2", "viewer", "user:*"),
    }
    assert (
        await ds.read_objects_tuples(store_id, "doc", ["1"], 100, relations=[], users=[], usersets=[]) == []
    )
    assert await ds.read_objects_tuples(store_id, "doc", [], 100) == []


async def test_read_users_rows_reads_a_users_tuples_over_relations(ds: SQLDatastore, store_id: str) -> None:
    cond = {"cidr": "10.0.0.0/8"}
    await ds.write(
        store_id,
        [],
        [
            tk("doc:1", "viewer", "user:ann"),
            tk("doc:1", "parent", "user:ann"),  # a relation not asked for
            tk("doc:2", "editor", "group:eng#member"),
            tk("doc:3", "viewer", "user:*"),
            tk("doc:4", "viewer", "user:bob"),
            tk("doc:5", "editor", "user:ann", "on_network", cond),
            tk("folder:1", "viewer", "user:ann"),  # another type
        ],
    )
    users = ["user:ann", "group:eng#member", "user:*"]
    rows = await ds.read_users_rows(store_id, "doc", ["viewer", "editor"], users, 100)
    assert rows is not None
    assert sorted(rows, key=lambda r: r[0]) == [
        ("1", "viewer", "user:ann", None, None),
        ("2", "editor", "group:eng#member", None, None),
        ("3", "viewer", "user:*", None, None),
        ("5", "editor", "user:ann", "on_network", cond),  # the context comes with a condition
    ]
    assert await ds.read_users_rows(store_id, "doc", ["viewer", "editor"], users, 3) is None  # past it
    assert await ds.read_users_rows(store_id, "doc", ["viewer", "editor"], users, 4) is not None
    assert await ds.read_users_rows(store_id, "doc", [], users, 100) == []
    assert await ds.read_users_rows(store_id, "doc", ["viewer"], [], 100) == []
    assert await ds.read_users_rows(store_id, "doc", ["viewer"], ["user:carl"], 100) == []
