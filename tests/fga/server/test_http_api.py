"""OpenFGA's HTTP API under /fga, in process, on SQLite and PostgreSQL: every route's success shape and the
errors OpenFGA answers for bad input (which change nothing)."""

from __future__ import annotations

import re

import httpx
import pytest

from tessera.services import Services
from tests.fga.server.conftest import model_json, new_store, new_store_with_model, tk

ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


async def test_store_lifecycle(api: httpx.AsyncClient) -> None:
    ids = [await new_store(api, f"s{i}") for i in range(3)]
    assert all(ULID.match(i) for i in ids)
    r = await api.get(f"/stores/{ids[0]}")
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == ids[0] and body["name"] == "s0"
    assert body["created_at"].endswith("Z") and body["updated_at"].endswith("Z")

    page = (await api.get("/stores", params={"page_size": 2})).json()
    assert len(page["stores"]) == 2 and page["continuation_token"]
    rest = (
        await api.get("/stores", params={"page_size": 2, "continuation_token": page["continuation_token"]})
    ).json()
    assert {s["id"] for s in page["stores"] + rest["stores"]} == set(ids)
    assert rest["continuation_token"] == ""
    named = (await api.get("/stores", params={"name": "s1"})).json()
    assert [s["id"] for s in named["stores"]] == [ids[1]]

    r = await api.delete(f"/stores/{ids[0]}")
    assert r.status_code == 204 and r.content == b""
    r = await api.get(f"/stores/{ids[0]}")
    assert r.status_code == 404 and r.json()["code"] == "store_id_not_found"


async def test_models_write_read_list_and_latest(api: httpx.AsyncClient) -> None:
    store_id, first = await new_store_with_model(api)
    r = await api.post(f"/stores/{store_id}/authorization-models", json=model_json())
    second = r.json()["authorization_model_id"]
    assert ULID.match(second) and second != first

    model = (await api.get(f"/stores/{store_id}/authorization-models/{first}")).json()["authorization_model"]
    assert model["id"] == first and model["schema_version"] == "1.1"
    assert {t["type"] for t in model["type_definitions"]} == {"user", "group", "folder", "document"}
    assert "in_office" in model["conditions"]

    listed = (await api.get(f"/stores/{store_id}/authorization-models", params={"page_size": 1})).json()
    assert [m["id"] for m in listed["authorization_models"]] == [second]  # newest first
    more = (
        await api.get(
            f"/stores/{store_id}/authorization-models",
            params={"page_size": 1, "continuation_token": listed["continuation_token"]},
        )
    ).json()
    assert [m["id"] for m in more["authorization_models"]] == [first]


async def test_write_read_check_and_delete(api: httpx.AsyncClient) -> None:
    store_id, model_id = await new_store_with_model(api)
    writes = [
        tk("user:anne", "owner", "folder:f1"),
        tk("folder:f1", "parent", "document:d1"),
        tk("group:eng#member", "editor", "document:d2"),
        tk("user:bob", "member", "group:eng"),
        tk("user:*", "viewer", "folder:public"),
    ]
    r = await api.post(
        f"/stores/{store_id}/write",
        json={"writes": {"tuple_keys": writes}, "authorization_model_id": model_id},
    )
    assert r.status_code == 200 and r.json() == {}

    async def allowed(user: str, relation: str, obj: str) -> bool:
        r = await api.post(f"/stores/{store_id}/check", json={"tuple_key": tk(user, relation, obj)})
        assert r.status_code == 200, r.text
        return bool(r.json()["allowed"])

    assert await allowed("user:anne", "viewer", "document:d1")  # owner of the parent folder
    assert await allowed("user:bob", "viewer", "document:d2")  # editor through the group
    assert not await allowed("user:bob", "viewer", "document:d1")
    assert await allowed("user:zed", "viewer", "folder:public")  # the wildcard

    seen, token = [], ""
    while True:
        page = (
            await api.post(f"/stores/{store_id}/read", json={"page_size": 2, "continuation_token": token})
        ).json()
        assert set(page["tuples"][0]) == {"key", "timestamp"}
        seen += [t["key"] for t in page["tuples"]]
        token = page["continuation_token"]
        if not token:
            break

    def order(k: dict) -> tuple:
        return (k["object"], k["relation"], k["user"])

    assert sorted(seen, key=order) == sorted(writes, key=order)
    r = await api.post(f"/stores/{store_id}/read", json={"tuple_key": {"object": "document:"}})
    assert r.status_code == 400 and r.json()["code"] == "validation_error"  # a type alone needs a user
    by_user = (
        await api.post(
            f"/stores/{store_id}/read", json={"tuple_key": {"object": "document:", "user": "folder:f1"}}
        )
    ).json()
    assert [t["key"] for t in by_user["tuples"]] == [writes[1]]

    r = await api.post(
        f"/stores/{store_id}/write", json={"deletes": {"tuple_keys": [tk("user:bob", "member", "group:eng")]}}
    )
    assert r.status_code == 200
    assert not await allowed("user:bob", "viewer", "document:d2")


async def test_conditions_and_context(api: httpx.AsyncClient) -> None:
    store_id, _ = await new_store_with_model(api)
    cond = {"name": "in_office", "context": {"office": "10.0.0.0/8"}}
    r = await api.post(
        f"/stores/{store_id}/write",
        json={"writes": {"tuple_keys": [tk("user:anne", "viewer", "document:d1", condition=cond)]}},
    )
    assert r.status_code == 200, r.text

    async def check(ip: str) -> bool:
        r = await api.post(
            f"/stores/{store_id}/check",
            json={"tuple_key": tk("user:anne", "viewer", "document:d1"), "context": {"ip": ip}},
        )
        assert r.status_code == 200, r.text
        return bool(r.json()["allowed"])

    assert await check("10.1.2.3")
    assert not await check("192.168.0.1")
    read = (await api.post(f"/stores/{store_id}/read", json={"tuple_key": {"object": "document:d1"}})).json()
    assert read["tuples"][0]["key"]["condition"] == cond


async def test_contextual_tuples_batch_check_expand_list_objects_list_users(api: httpx.AsyncClient) -> None:
    store_id, _ = await new_store_with_model(api)
    await api.post(
        f"/stores/{store_id}/write",
        json={
            "writes": {
                "tuple_keys": [
                    tk("user:anne", "owner", "document:d1"),
                    tk("user:anne", "owner", "document:d2"),
                    tk("user:anne", "blocked", "document:d2"),
                    tk("group:eng#member", "viewer", "folder:f1"),
                    tk("folder:f1", "parent", "document:d3"),
                ]
            }
        },
    )
    ctx = {"tuple_keys": [tk("user:carl", "member", "group:eng")]}
    r = await api.post(
        f"/stores/{store_id}/check",
        json={"tuple_key": tk("user:carl", "viewer", "document:d3"), "contextual_tuples": ctx},
    )
    assert r.json()["allowed"] is True
    r = await api.post(
        f"/stores/{store_id}/check", json={"tuple_key": tk("user:carl", "viewer", "document:d3")}
    )
    assert r.json()["allowed"] is False

    r = await api.post(
        f"/stores/{store_id}/batch-check",
        json={
            "checks": [
                {"tuple_key": tk("user:anne", "viewer", "document:d1"), "correlation_id": "a-1"},
                {"tuple_key": tk("user:anne", "viewer", "document:d2"), "correlation_id": "a-2"},
                {"tuple_key": tk("user:anne", "nope", "document:d2"), "correlation_id": "bad"},
            ]
        },
    )
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    assert result["a-1"] == {"allowed": True}
    assert result["a-2"] == {"allowed": False}  # blocked: the exclusion wins
    assert result["bad"]["error"]["input_error"] == "validation_error"

    r = await api.post(
        f"/stores/{store_id}/expand", json={"tuple_key": {"object": "document:d1", "relation": "owner"}}
    )
    assert r.json()["tree"]["root"]["leaf"]["users"]["users"] == ["user:anne"]

    r = await api.post(
        f"/stores/{store_id}/list-objects",
        json={"user": "user:anne", "relation": "viewer", "type": "document"},
    )
    assert r.json() == {"objects": ["document:d1"]}
    r = await api.post(
        f"/stores/{store_id}/streamed-list-objects",
        json={"user": "user:anne", "relation": "editor", "type": "document"},
    )
    lines = [line for line in r.text.splitlines() if line]
    assert sorted(line for line in lines) == [
        '{"result": {"object": "document:d1"}}',
        '{"result": {"object": "document:d2"}}',
    ]

    r = await api.post(
        f"/stores/{store_id}/list-users",
        json={
            "object": {"type": "folder", "id": "f1"},
            "relation": "viewer",
            "user_filters": [{"type": "group", "relation": "member"}],
        },
    )
    assert r.json() == {"users": [{"userset": {"type": "group", "id": "eng", "relation": "member"}}]}


async def test_read_changes_pages_and_polls(api: httpx.AsyncClient) -> None:
    store_id, _ = await new_store_with_model(api)
    for i in range(3):
        await api.post(
            f"/stores/{store_id}/write",
            json={"writes": {"tuple_keys": [tk("user:a", "owner", f"document:{i}")]}},
        )
    await api.post(
        f"/stores/{store_id}/write", json={"writes": {"tuple_keys": [tk("user:a", "owner", "folder:x")]}}
    )
    first = (await api.get(f"/stores/{store_id}/changes", params={"type": "document", "page_size": 2})).json()
    assert [c["tuple_key"]["object"] for c in first["changes"]] == ["document:0", "document:1"]
    assert first["changes"][0]["operation"] == "TUPLE_OPERATION_WRITE"
    second = (
        await api.get(
            f"/stores/{store_id}/changes",
            params={"type": "document", "page_size": 2, "continuation_token": first["continuation_token"]},
        )
    ).json()
    assert [c["tuple_key"]["object"] for c in second["changes"]] == ["document:2"]
    r = await api.get(
        f"/stores/{store_id}/changes",
        params={"type": "folder", "continuation_token": first["continuation_token"]},
    )
    assert r.status_code == 400 and r.json()["code"] == "invalid_continuation_token"


async def test_assertions_roundtrip(api: httpx.AsyncClient) -> None:
    store_id, model_id = await new_store_with_model(api)
    assertions = [{"tuple_key": tk("user:anne", "viewer", "document:d1"), "expectation": True}]
    r = await api.put(f"/stores/{store_id}/assertions/{model_id}", json={"assertions": assertions})
    assert r.status_code == 204
    got = (await api.get(f"/stores/{store_id}/assertions/{model_id}")).json()
    assert got == {"authorization_model_id": model_id, "assertions": assertions}


# --- hostile input: OpenFGA's error codes, and nothing changes -------------------------------------------


async def _tuple_count(api: httpx.AsyncClient, store_id: str) -> int:
    return len((await api.post(f"/stores/{store_id}/read", json={})).json()["tuples"])


async def test_malformed_json_models_are_refused(api: httpx.AsyncClient) -> None:
    store_id = await new_store(api)
    bad_models = [
        {"schema_version": "1.1", "type_definitions": []},  # too few type definitions
        {"type_definitions": [{"type": "user"}]},  # schema_version missing
        {
            "schema_version": "1.1",
            "type_definitions": [
                {"type": "doc", "relations": {"viewer": {"computedUserset": {"relation": "nope"}}}}
            ],
        },
        {"schema_version": "0.9", "type_definitions": [{"type": "user"}]},
        {"schema_version": "1.1", "type_definitions": "user"},
    ]
    for model in bad_models:
        r = await api.post(f"/stores/{store_id}/authorization-models", json=model)
        assert r.status_code == 400, (model, r.text)
        assert r.json()["code"] in {
            "validation_error",
            "invalid_authorization_model",
            "unsupported_schema_version",
        }
        assert r.json()["message"]
    r = await api.post(
        f"/stores/{store_id}/authorization-models",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["code"] == "validation_error"
    assert (await api.get(f"/stores/{store_id}/authorization-models")).json()["authorization_models"] == []


async def test_unknown_types_and_relations(api: httpx.AsyncClient) -> None:
    store_id, _ = await new_store_with_model(api)
    r = await api.post(f"/stores/{store_id}/check", json={"tuple_key": tk("user:a", "viewer", "spaceship:1")})
    assert r.status_code == 400 and r.json()["code"] == "validation_error"
    assert "spaceship" in r.json()["message"]
    r = await api.post(f"/stores/{store_id}/check", json={"tuple_key": tk("user:a", "pilot", "document:1")})
    assert r.status_code == 400 and r.json()["code"] == "validation_error"
    r = await api.post(
        f"/stores/{store_id}/list-objects", json={"user": "user:a", "relation": "viewer", "type": "spaceship"}
    )
    assert r.status_code == 400 and r.json()["code"] == "type_not_found"
    r = await api.post(
        f"/stores/{store_id}/list-objects", json={"user": "user:a", "relation": "pilot", "type": "document"}
    )
    assert r.status_code == 400 and r.json()["code"] == "relation_not_found"
    r = await api.post(
        f"/stores/{store_id}/write", json={"writes": {"tuple_keys": [tk("user:a", "pilot", "document:1")]}}
    )
    assert r.status_code == 400 and r.json()["code"] in {"validation_error", "invalid_tuple"}
    r = await api.post(
        f"/stores/{store_id}/write", json={"writes": {"tuple_keys": [tk("robot:a", "owner", "document:1")]}}
    )
    assert r.status_code == 400
    assert await _tuple_count(api, store_id) == 0


async def test_oversized_writes_batches_and_fields(api: httpx.AsyncClient) -> None:
    store_id, _ = await new_store_with_model(api)
    too_many = [tk(f"user:u{i}", "owner", "document:d") for i in range(101)]
    r = await api.post(f"/stores/{store_id}/write", json={"writes": {"tuple_keys": too_many}})
    assert r.status_code == 400 and r.json()["code"] == "exceeded_entity_limit"
    checks = [
        {"tuple_key": tk("user:a", "viewer", "document:d"), "correlation_id": f"c{i}"} for i in range(51)
    ]
    r = await api.post(f"/stores/{store_id}/batch-check", json={"checks": checks})
    assert r.status_code == 400 and r.json()["code"] == "validation_error"
    ctx = {"tuple_keys": [tk(f"user:u{i}", "owner", "document:d") for i in range(101)]}
    r = await api.post(
        f"/stores/{store_id}/check",
        json={"tuple_key": tk("user:a", "viewer", "document:d"), "contextual_tuples": ctx},
    )
    assert r.status_code == 400 and r.json()["code"] == "validation_error"
    r = await api.post(
        f"/stores/{store_id}/write",
        json={"writes": {"tuple_keys": [tk("user:a", "owner", "document:" + "x" * 300)]}},
    )
    assert r.status_code == 400 and r.json()["code"] == "validation_error"
    r = await api.post(f"/stores/{store_id}/read", json={"page_size": 101})
    assert r.status_code == 400 and r.json()["code"] == "page_size_invalid"
    assertions = [{"tuple_key": tk("user:a", "viewer", "document:d"), "expectation": True}] * 101
    model_id = (await api.get(f"/stores/{store_id}/authorization-models")).json()["authorization_models"][0][
        "id"
    ]
    r = await api.put(f"/stores/{store_id}/assertions/{model_id}", json={"assertions": assertions})
    assert r.status_code == 400 and r.json()["code"] == "validation_error"
    assert await _tuple_count(api, store_id) == 0


async def test_duplicates_and_missing_tuples(api: httpx.AsyncClient) -> None:
    store_id, _ = await new_store_with_model(api)
    one = tk("user:a", "owner", "document:d")
    r = await api.post(f"/stores/{store_id}/write", json={"writes": {"tuple_keys": [one, one]}})
    assert r.status_code == 400 and r.json()["code"] == "cannot_allow_duplicate_tuples_in_one_request"
    assert (
        await api.post(f"/stores/{store_id}/write", json={"writes": {"tuple_keys": [one]}})
    ).status_code == 200
    r = await api.post(
        f"/stores/{store_id}/write",
        json={"writes": {"tuple_keys": [tk("user:b", "owner", "document:d"), one]}},
    )
    assert r.status_code == 400 and r.json()["code"] == "write_failed_due_to_invalid_input"
    assert await _tuple_count(api, store_id) == 1  # user:b was not written either
    r = await api.post(
        f"/stores/{store_id}/write", json={"writes": {"tuple_keys": [one], "on_duplicate": "ignore"}}
    )
    assert r.status_code == 200
    missing = tk("user:z", "owner", "document:d")
    r = await api.post(f"/stores/{store_id}/write", json={"deletes": {"tuple_keys": [missing]}})
    assert r.status_code == 400 and r.json()["code"] == "write_failed_due_to_invalid_input"
    r = await api.post(
        f"/stores/{store_id}/write", json={"deletes": {"tuple_keys": [missing], "on_missing": "ignore"}}
    )
    assert r.status_code == 200
    r = await api.post(f"/stores/{store_id}/write", json={})
    assert r.status_code == 400 and r.json()["code"] == "invalid_write_input"


async def test_bad_ids_unknown_stores_models_and_paths(api: httpx.AsyncClient) -> None:
    r = await api.post("/stores/not-a-ulid/check", json={"tuple_key": tk("user:a", "viewer", "document:d")})
    assert r.status_code == 400 and r.json()["code"] == "validation_error"
    r = await api.post(
        "/stores/01HZZZZZZZZZZZZZZZZZZZZZZZ/check", json={"tuple_key": tk("user:a", "viewer", "document:d")}
    )
    assert r.status_code == 404 and r.json()["code"] == "store_id_not_found"
    store_id = await new_store(api)
    r = await api.post(f"/stores/{store_id}/check", json={"tuple_key": tk("user:a", "viewer", "document:d")})
    assert r.status_code == 400 and r.json()["code"] == "latest_authorization_model_not_found"
    r = await api.get(f"/stores/{store_id}/authorization-models/01HZZZZZZZZZZZZZZZZZZZZZZZ")
    assert r.status_code == 400 and r.json()["code"] == "authorization_model_not_found"
    r = await api.post(f"/stores/{store_id}/check", json={})
    assert r.status_code == 400 and r.json()["code"] == "validation_error"
    r = await api.get("/no/such/endpoint")
    assert r.status_code == 404 and r.json() == {"code": "undefined_endpoint", "message": "Not Found"}
    r = await api.put("/stores", json={})
    assert r.status_code == 404 and r.json()["code"] == "undefined_endpoint"
    r = await api.post("/stores", json={"name": ""})
    assert r.status_code == 400 and r.json()["code"] == "validation_error"
    r = await api.post("/stores", content=b"[1, 2]", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "validation_error"


async def test_hostile_bodies_are_validation_errors(api: httpx.AsyncClient) -> None:
    store_id, _ = await new_store_with_model(api)
    bodies = [
        b"[" * 30000 + b"]" * 30000,  # nesting deep enough to exhaust a recursive parser
        b'{"tuple_key": [1, 2, 3]}',
        b'{"tuple_key": {"user": 5, "relation": "viewer", "object": "document:1"}}',
        b'{"tuple_key": {"user": "user:a", "relation": "viewer", "object": "document:1"}, "context": [1]}',
        b'{"tuple_key": {"user": "user:a", "relation": "viewer", "object": "document:1"}, '
        b'"contextual_tuples": {"tuple_keys": "nope"}}',
        b'{"tuple_key": {"user": "user:a", "relation": "viewer", "object": "document:1"}, '
        b'"consistency": "EVENTUAL"}',
        b'{"tuple_key": {"user": "user:a", "relation": "viewer", "object": "document:1"}, '
        b'"authorization_model_id": "not-a-ulid"}',
        b"\xff\xfe not utf-8",
    ]
    for raw in bodies:
        r = await api.post(
            f"/stores/{store_id}/check", content=raw, headers={"content-type": "application/json"}
        )
        assert r.status_code == 400, (raw[:60], r.text)
        assert r.json()["code"] == "validation_error", (raw[:60], r.text)
    r = await api.post(
        f"/stores/{store_id}/list-users",
        json={
            "object": {"type": "document", "id": "1"},
            "relation": "viewer",
            "user_filters": [{"type": "user"}] * 2,
        },
    )
    assert r.status_code == 400 and r.json()["code"] == "validation_error"
    r = await api.post(
        f"/stores/{store_id}/batch-check",
        json={"checks": [{"tuple_key": tk("user:a", "viewer", "document:1"), "correlation_id": "bad id!"}]},
    )
    assert r.status_code == 400 and r.json()["code"] == "validation_error"
    r = await api.post(
        f"/stores/{store_id}/write",
        json={"writes": {"tuple_keys": [tk("user:a", "owner", "document:1")], "on_duplicate": "overwrite"}},
    )
    assert r.status_code == 400 and r.json()["code"] == "validation_error"
    assert await _tuple_count(api, store_id) == 0


async def test_an_unexpected_failure_is_openfgas_internal_error(
    api: httpx.AsyncClient, fga_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_id, _ = await new_store_with_model(api)

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(fga_services.fga_datastore, "read_page", broken)
    r = await api.post(f"/stores/{store_id}/read", json={})
    assert r.status_code == 500
    assert r.json() == {"code": "internal_error", "message": "Internal Server Error"}  # no details leak
