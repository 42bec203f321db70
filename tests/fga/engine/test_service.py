"""The operations: validation with OpenFGA's error codes, Write's rules, paging, changelog, models,
assertions, stores, BatchCheck, Expand and the consistency preference."""

from __future__ import annotations

import pytest

from tessera.fga.engine.errors import ErrorCode, FGAError
from tessera.fga.engine.list_users import UserFilter
from tessera.fga.engine.memory import MemoryDatastore
from tessera.fga.engine.service import (
    BatchCheckItem,
    BatchCheckRequest,
    CheckRequest,
    EngineConfig,
    FGAService,
    ListObjectsRequest,
    ListUsersRequest,
)
from tessera.fga.engine.store import ReadFilter
from tessera.fga.engine.tuples import TupleKey
from tessera.fga.language import transform_dsl_to_json
from tests.fga.engine.helpers import allowed, setup, tk

MODEL = """model
  schema 1.1
type user
type group
  relations
    define member: [user, group#member]
type folder
  relations
    define owner: [user]
    define viewer: [user, group#member] or owner
type document
  relations
    define parent: [folder]
    define owner: [user]
    define blocked: [user]
    define viewer: ([user, user:*, group#member] or owner or viewer from parent) but not blocked
"""


async def _code(coro: object) -> ErrorCode:
    with pytest.raises(FGAError) as err:
        await coro  # type: ignore[misc]
    return err.value.error_code


async def test_check_semantics_end_to_end() -> None:
    svc, sid, _ = await setup(
        MODEL,
        [
            tk("group:eng", "member", "user:anne"),
            tk("group:all", "member", "group:eng#member"),
            tk("folder:f", "viewer", "group:all#member"),
            tk("document:1", "parent", "folder:f"),
            tk("document:2", "viewer", "user:*"),
            tk("document:2", "blocked", "user:carl"),
        ],
    )
    assert await allowed(svc, sid, "document:1", "viewer", "user:anne")
    assert not await allowed(svc, sid, "document:1", "viewer", "user:bob")
    assert await allowed(svc, sid, "document:2", "viewer", "user:bob")
    assert not await allowed(svc, sid, "document:2", "viewer", "user:carl")
    assert await allowed(svc, sid, "document:1", "viewer", "group:eng#member")
    lo = await svc.list_objects(ListObjectsRequest(sid, "document", "viewer", "user:anne"))
    assert sorted(lo.objects) == ["document:1", "document:2"]
    lu = await svc.list_users(ListUsersRequest(sid, "document:1", "viewer", [UserFilter("user")]))
    assert lu.users == ["user:anne"]


async def test_unknown_types_relations_and_malformed_users() -> None:
    svc, sid, _ = await setup(MODEL)
    for obj, rel, user in [
        ("nope:1", "viewer", "user:anne"),
        ("document:1", "nope", "user:anne"),
        ("document:1", "viewer", "nope:anne"),
        ("document:1", "viewer", "group:eng#nope"),
        ("document:1", "viewer", "a:b:c"),
        ("document", "viewer", "user:anne"),
    ]:
        assert (
            await _code(svc.check(CheckRequest(sid, TupleKey(obj, rel, user)))) == ErrorCode.validation_error
        )
    assert (
        await _code(svc.list_objects(ListObjectsRequest(sid, "nope", "viewer", "user:anne")))
        == ErrorCode.type_not_found
    )
    assert (
        await _code(svc.list_objects(ListObjectsRequest(sid, "document", "nope", "user:anne")))
        == ErrorCode.relation_not_found
    )
    assert (
        await _code(svc.list_users(ListUsersRequest(sid, "document:1", "viewer", [UserFilter("nope")])))
        == ErrorCode.type_not_found
    )
    assert (
        await _code(
            svc.list_users(ListUsersRequest(sid, "document:1", "viewer", [UserFilter("group", "nope")]))
        )
        == ErrorCode.relation_not_found
    )
    assert await _code(svc.write(sid, [tk("nope:1", "viewer", "user:a")])) == ErrorCode.validation_error
    assert await _code(svc.write(sid, [tk("document:1", "parent", "user:a")])) == ErrorCode.validation_error
    assert (
        await _code(svc.write(sid, [tk("document:1", "viewer", "folder:x#viewer")]))
        == ErrorCode.validation_error
    )


async def test_invalid_tuples_written_and_contextual() -> None:
    svc, sid, _ = await setup(MODEL)
    implicit = tk("group:eng", "member", "group:eng#member")
    assert await _code(svc.write(sid, [implicit])) == ErrorCode.validation_error
    bad_ctx = CheckRequest(sid, tk("document:1", "viewer", "user:a"), contextual_tuples=[implicit])
    assert await _code(svc.check(bad_ctx)) == ErrorCode.invalid_tuple
    wrong = CheckRequest(
        sid, tk("document:1", "viewer", "user:a"), contextual_tuples=[tk("document:1", "parent", "user:a")]
    )
    assert await _code(svc.check(wrong)) == ErrorCode.invalid_tuple
    assert (await svc.read(sid))[0] == []


async def test_unknown_store_and_model() -> None:
    svc, sid, _ = await setup(MODEL)
    assert await _code(svc.get_store("01ARZ3NDEKTSV4RRFFQ69G5FAV")) == ErrorCode.store_id_not_found
    assert (
        await _code(
            svc.check(CheckRequest(sid, tk("document:1", "viewer", "user:a"), "01ARZ3NDEKTSV4RRFFQ69G5FAV"))
        )
        == ErrorCode.authorization_model_not_found
    )
    empty = await svc.create_store("empty")
    assert (
        await _code(svc.check(CheckRequest(empty.id, tk("document:1", "viewer", "user:a"))))
        == ErrorCode.latest_authorization_model_not_found
    )


async def test_write_is_all_or_nothing_with_duplicate_and_missing_rules() -> None:
    svc, sid, _ = await setup(MODEL, [tk("document:1", "owner", "user:anne")])
    # One bad tuple among good ones: nothing is written.
    assert (
        await _code(
            svc.write(sid, [tk("document:2", "owner", "user:bob"), tk("document:1", "owner", "user:anne")])
        )
        == ErrorCode.write_failed_due_to_invalid_input
    )
    assert not await allowed(svc, sid, "document:2", "owner", "user:bob", consistency="HIGHER_CONSISTENCY")
    await svc.write(
        sid,
        [tk("document:2", "owner", "user:bob"), tk("document:1", "owner", "user:anne")],
        on_duplicate="ignore",
    )
    assert await allowed(svc, sid, "document:2", "owner", "user:bob")
    assert (
        await _code(svc.write(sid, deletes=[tk("document:9", "owner", "user:bob")]))
        == ErrorCode.write_failed_due_to_invalid_input
    )
    await svc.write(sid, deletes=[tk("document:9", "owner", "user:bob")], on_missing="ignore")
    # The same tuple twice in one request.
    dup = [tk("document:3", "owner", "user:c"), tk("document:3", "owner", "user:c")]
    assert await _code(svc.write(sid, dup)) == ErrorCode.cannot_allow_duplicate_tuples_in_one_request
    assert await _code(svc.write(sid)) == ErrorCode.invalid_write_input


async def test_oversized_requests() -> None:
    svc, sid, _ = await setup(MODEL)
    many = [tk(f"document:{i}", "owner", "user:a") for i in range(101)]
    assert await _code(svc.write(sid, many)) == ErrorCode.exceeded_entity_limit
    assert (await svc.read(sid))[0] == []
    ctx = [tk(f"document:{i}", "owner", "user:a") for i in range(101)]
    assert (
        await _code(svc.check(CheckRequest(sid, tk("document:1", "owner", "user:a"), contextual_tuples=ctx)))
        == ErrorCode.validation_error
    )
    checks = [BatchCheckItem(tk("document:1", "owner", "user:a"), str(i)) for i in range(51)]
    assert await _code(svc.batch_check(BatchCheckRequest(sid, checks))) == ErrorCode.validation_error
    assert await _code(svc.read(sid, page_size=101)) == ErrorCode.page_size_invalid


async def test_batch_check_correlation_ids_and_per_item_errors() -> None:
    svc, sid, _ = await setup(MODEL, [tk("document:1", "owner", "user:anne")])
    out = await svc.batch_check(
        BatchCheckRequest(
            sid,
            [
                BatchCheckItem(tk("document:1", "viewer", "user:anne"), "a"),
                BatchCheckItem(tk("document:1", "viewer", "user:bob"), "b"),
                BatchCheckItem(tk("document:1", "nope", "user:bob"), "c"),
                BatchCheckItem(
                    tk("document:2", "viewer", "user:bob"), "d", [tk("document:2", "viewer", "user:bob")]
                ),
            ],
        )
    )
    assert out["a"].to_json() == {"allowed": True}
    assert out["b"].to_json() == {"allowed": False}
    assert out["c"].to_json()["error"]["input_error"] == "validation_error"
    assert out["d"].allowed is True
    dup = [BatchCheckItem(tk("document:1", "owner", "user:a"), "x")] * 2
    assert await _code(svc.batch_check(BatchCheckRequest(sid, dup))) == ErrorCode.validation_error


async def test_read_pages_and_changes() -> None:
    svc, sid, _ = await setup(MODEL, [tk(f"document:{i}", "owner", f"user:u{i % 3}") for i in range(7)])
    seen: list[str] = []
    token = ""
    while True:
        rows, token = await svc.read(sid, page_size=3, continuation_token=token)
        seen.extend(r.key.object for r in rows)
        if not token:
            break
    assert sorted(seen) == sorted(f"document:{i}" for i in range(7))
    rows, _ = await svc.read(sid, ReadFilter("document:", "owner", "user:u1"))
    assert sorted(r.key.object for r in rows) == ["document:1", "document:4"]
    assert await _code(svc.read(sid, ReadFilter("document:", "owner"))) == ErrorCode.validation_error
    assert await _code(svc.read(sid, continuation_token="!!")) == ErrorCode.invalid_continuation_token
    await svc.write(sid, deletes=[tk("document:0", "owner", "user:u0")])
    changes, tok = await svc.read_changes(sid, "document", page_size=100)
    assert [c.operation for c in changes].count("TUPLE_OPERATION_DELETE") == 1
    assert len(changes) == 8
    more, _ = await svc.read_changes(sid, "document", continuation_token=tok)
    assert more == []
    assert (
        await _code(svc.read_changes(sid, "folder", continuation_token=tok))
        == ErrorCode.invalid_continuation_token
    )


async def test_models_are_versioned_and_old_tuples_are_ignored() -> None:
    svc, sid, first = await setup(MODEL, [tk("document:1", "viewer", "user:anne")])
    assert await allowed(svc, sid, "document:1", "viewer", "user:anne")
    # The new model no longer allows [user] on document#viewer: the stored tuple is ignored, not an error.
    second = await svc.write_authorization_model(
        sid, transform_dsl_to_json(MODEL.replace("[user, user:*, group#member]", "[group#member]"))
    )
    assert second != first
    assert not await allowed(svc, sid, "document:1", "viewer", "user:anne")
    assert await allowed(svc, sid, "document:1", "viewer", "user:anne", authorization_model_id=first)
    models, _ = await svc.read_authorization_models(sid)
    assert [m.id for m in models] == [second, first]
    assert (await svc.read_authorization_model(sid, first)).model["type_definitions"]


async def test_invalid_models_are_refused() -> None:
    svc, sid, _ = await setup(MODEL)
    bad = {
        "schema_version": "1.1",
        "type_definitions": [
            {"type": "user"},
            {
                "type": "doc",
                "relations": {
                    "a": {"computedUserset": {"relation": "b"}},
                    "b": {"computedUserset": {"relation": "a"}},
                },
            },
        ],
    }
    assert await _code(svc.write_authorization_model(sid, bad)) == ErrorCode.invalid_authorization_model
    bad2 = {"schema_version": "1.0", "type_definitions": [{"type": "user"}]}
    assert await _code(svc.write_authorization_model(sid, bad2)) == ErrorCode.unsupported_schema_version
    bad3 = {"schema_version": "1.1", "type_definitions": [{"type": "user"}, {"type": "user"}]}
    assert (
        await _code(svc.write_authorization_model(sid, bad3))
        == ErrorCode.cannot_allow_duplicate_types_in_one_request
    )


async def test_cycles_answer_false_and_depth_is_limited() -> None:
    svc, sid, _ = await setup(
        MODEL, [tk("group:a", "member", "group:b#member"), tk("group:b", "member", "group:a#member")]
    )
    assert not await allowed(svc, sid, "group:a", "member", "user:anne")
    chain = [tk(f"group:g{i}", "member", f"group:g{i + 1}#member") for i in range(30)]
    chain.append(tk("group:g30", "member", "user:deep"))
    await svc.write(sid, chain)
    assert await _code(svc.check(CheckRequest(sid, tk("group:g0", "member", "user:deep")))) == (
        ErrorCode.authorization_model_resolution_too_complex
    )
    assert await allowed(svc, sid, "group:g10", "member", "user:deep")


async def test_assertions_and_stores() -> None:
    svc, sid, mid = await setup(MODEL)
    a = [
        {"tuple_key": {"object": "document:1", "relation": "viewer", "user": "user:a"}, "expectation": False}
    ]
    await svc.write_assertions(sid, mid, a)
    assert await svc.read_assertions(sid, mid) == a
    bad = [
        {"tuple_key": {"object": "document:1", "relation": "nope", "user": "user:a"}, "expectation": False}
    ]
    assert await _code(svc.write_assertions(sid, mid, bad)) == ErrorCode.validation_error
    assert await _code(svc.write_assertions(sid, mid, a * 101)) == ErrorCode.assertions_too_many_items
    stores, _ = await svc.list_stores()
    assert [s.id for s in stores] == [sid]
    await svc.delete_store(sid)
    assert await _code(svc.get_store(sid)) == ErrorCode.store_id_not_found


async def test_expand_one_level() -> None:
    svc, sid, _ = await setup(
        MODEL, [tk("document:1", "parent", "folder:f"), tk("document:1", "viewer", "user:a")]
    )
    tree = await svc.expand(sid, "document:1", "viewer")
    root = tree["tree"]["root"]
    assert root["name"] == "document:1#viewer"
    base = root["difference"]["base"]["union"]["nodes"]
    assert base[0]["leaf"]["users"]["users"] == ["user:a"]
    assert base[1]["leaf"]["computed"]["userset"] == "document:1#owner"
    assert base[2]["leaf"]["tupleToUserset"]["computed"] == [{"userset": "folder:f#viewer"}]


async def test_higher_consistency_bypasses_the_check_cache() -> None:
    ds = MemoryDatastore()
    svc, sid, _ = await setup(MODEL, ds=ds)
    other = FGAService(ds, config=EngineConfig(check_cache_ttl=60))  # another process on the same storage
    assert not await allowed(other, sid, "document:1", "owner", "user:anne")
    await svc.write(sid, [tk("document:1", "owner", "user:anne")])
    assert not await allowed(other, sid, "document:1", "owner", "user:anne")  # cached, within its TTL
    assert await allowed(other, sid, "document:1", "owner", "user:anne", consistency="HIGHER_CONSISTENCY")
    # Writes through the same service are seen at once.
    await other.write(sid, [tk("document:1", "owner", "user:bob")])
    assert await allowed(other, sid, "document:1", "owner", "user:bob")
    assert await allowed(other, sid, "document:1", "owner", "user:anne")


async def test_latest_model_and_store_are_remembered_for_the_metadata_ttl() -> None:
    from tessera.core.clock import FrozenClock

    clock = FrozenClock(1_000_000.0)
    ds = MemoryDatastore(clock)
    one = FGAService(ds, clock=clock)
    two = FGAService(ds, clock=clock)  # another process
    store = await one.create_store("s")
    await one.write_authorization_model(store.id, transform_dsl_to_json(MODEL))
    await one.write(store.id, [tk("document:1", "viewer", "user:anne")])
    assert await allowed(one, store.id, "document:1", "viewer", "user:anne", consistency="HIGHER_CONSISTENCY")
    restricted = MODEL.replace("[user, user:*, group#member]", "[group#member]")
    await two.write_authorization_model(store.id, transform_dsl_to_json(restricted))
    # The writer sees its model at once; the other process within the TTL still uses the one it knew.
    assert not await allowed(two, store.id, "document:1", "viewer", "user:anne")
    assert await allowed(one, store.id, "document:1", "viewer", "user:anne", consistency="HIGHER_CONSISTENCY")
    clock.advance(11)
    assert not await allowed(
        one, store.id, "document:1", "viewer", "user:anne", consistency="HIGHER_CONSISTENCY"
    )
    await two.delete_store(store.id)
    assert await _code(two.check(CheckRequest(store.id, tk("document:1", "viewer", "user:a")))) == (
        ErrorCode.store_id_not_found
    )
    clock.advance(11)
    assert await _code(one.check(CheckRequest(store.id, tk("document:1", "viewer", "user:a")))) == (
        ErrorCode.store_id_not_found
    )


async def test_batch_check_resolves_items_of_one_user_together() -> None:
    from tests.fga.engine.test_filter_and_lists import CountingDatastore

    ds = CountingDatastore()
    tuples = [tk("group:eng", "member", "user:anne"), tk("folder:f", "viewer", "group:eng#member")]
    tuples += [tk(f"document:{i}", "parent", "folder:f" if i % 2 else "folder:g") for i in range(50)]
    svc, sid, _ = await setup(MODEL, tuples, ds=ds)
    items = [BatchCheckItem(tk(f"document:{i}", "viewer", "user:anne"), f"c{i}") for i in range(50)]
    ds.calls = 0
    out = await svc.batch_check(BatchCheckRequest(sid, items))
    assert [out[f"c{i}"].allowed for i in range(50)] == [bool(i % 2) for i in range(50)]
    assert ds.calls < 25  # batched: not several reads per item
    for i in (1, 2):
        single = await allowed(
            svc, sid, f"document:{i}", "viewer", "user:anne", consistency="HIGHER_CONSISTENCY"
        )
        assert single == out[f"c{i}"].allowed
