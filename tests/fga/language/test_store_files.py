"""Store test files (store.fga.yaml): OpenFGA's `stores/` cases and the tuple file formats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tessera.fga.language import (
    DSLSyntaxError,
    ModelValidationError,
    StoreFileError,
    load_store_file,
    transform_dsl_to_json,
)

from .data import subdirs

STORE_CASES = [pytest.param(d, id=d.name) for d in subdirs("stores")]
_COMPARED = ("keyword", "message", "instancePath", "schemaPath", "params", "data")


@pytest.mark.parametrize("case", STORE_CASES)
def test_store_case(case: Path) -> None:
    errors_file = case / "expected_errors.json"
    if errors_file.exists():
        expected = json.loads(errors_file.read_text(encoding="utf-8"))
        with pytest.raises(StoreFileError) as info:
            load_store_file(case / "store.fga.yaml")
        got = info.value.schema_errors
        assert len(got) == len(expected), got
        for exp, act in zip(expected, got, strict=True):
            assert {k: act.get(k, {}) for k in _COMPARED if k in exp or k == "params"} == {
                k: exp.get(k, {}) for k in _COMPARED if k in exp or k == "params"
            }
        return
    store = load_store_file(case / "store.fga.yaml")
    assert store.name == "Valid Store File"
    dsl = "model\n  schema 1.1\ntype user\ntype organization\n  relations\n    define member: [user]\n"
    assert store.model == transform_dsl_to_json(dsl)
    assert [t.to_dict() for t in store.tuples] == [
        {"user": "user:daniel", "relation": "member", "object": "organization:auth0"},
        {"user": "user:jeffery", "relation": "member", "object": "organization:auth0"},
    ]
    assert [t.name for t in store.tests] == [
        "Tests for organization members",
        "Tests for user member of organization",
    ]
    assert list(store.tests[0].check[0].cases()) == [("user:daniel", "organization:auth0", "member", True)]
    assert store.tests[0].list_objects[0].assertions == {"member": ["organization:auth0"]}
    assert store.tests[1].list_users[0].user_filter[0].type == "user"
    assert store.tests[1].list_users[0].assertions == {"member": ["user:daniel", "user:jeffery"]}


MODEL = (
    "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [user, user with ok]\n"
    "condition ok(x: int) {\n  x < 3\n}\n"
)


def _write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "t.yaml",
            "- user: user:anne\n  relation: viewer\n  object: doc:1\n"
            "  condition: {name: ok, context: {x: 1}}\n",
        ),
        (
            "t.json",
            json.dumps(
                [
                    {
                        "user": "user:anne",
                        "relation": "viewer",
                        "object": "doc:1",
                        "condition": {"name": "ok", "context": {"x": 1}},
                    }
                ]
            ),
        ),
        (
            "t.csv",
            "user_type,user_id,user_relation,relation,object_type,object_id,condition_name,condition_context\n"
            'user,anne,,viewer,doc,1,ok,"{""x"": 1}"\n',
        ),
    ],
)
def test_tuple_files_in_each_format(tmp_path: Path, name: str, text: str) -> None:
    _write(tmp_path, "models/m.fga", MODEL)
    _write(tmp_path, f"data/{name}", text)
    store = _write(
        tmp_path,
        "store.fga.yaml",
        f"name: s\nmodel_file: models/m.fga\ntuple_file: data/{name}\ntests:\n"
        f"  - name: t\n    tuple_file: data/{name}\n    check:\n      - users: [user:anne, user:bob]\n"
        "        objects: [doc:1]\n        context: {x: 2}\n        assertions: {viewer: true}\n",
    )
    loaded = load_store_file(store)
    expected = [
        {
            "user": "user:anne",
            "relation": "viewer",
            "object": "doc:1",
            "condition": {"name": "ok", "context": {"x": 1}},
        }
    ]
    assert [t.to_dict() for t in loaded.tuples] == expected
    assert [t.to_dict() for t in loaded.tests[0].tuples] == expected
    assert list(loaded.tests[0].check[0].cases()) == [
        ("user:anne", "doc:1", "viewer", True),
        ("user:bob", "doc:1", "viewer", True),
    ]
    assert loaded.tests[0].check[0].context == {"x": 2}
    assert loaded.model_dsl == MODEL


def test_model_file_may_be_json_or_fga_mod(tmp_path: Path) -> None:
    model = transform_dsl_to_json(MODEL)
    _write(tmp_path, "m.json", json.dumps(model))
    store = _write(tmp_path, "a.fga.yaml", "model_file: m.json\ntests: []\n")
    assert load_store_file(store).model == model
    _write(tmp_path, "mod/fga.mod", "schema: '1.2'\ncontents:\n  - core.fga\n")
    _write(tmp_path, "mod/core.fga", "module core\n\ntype user\n")
    store = _write(tmp_path, "b.fga.yaml", "model_file: mod/fga.mod\ntests: []\n")
    assert [t["type"] for t in load_store_file(store).model["type_definitions"]] == ["user"]


@pytest.mark.parametrize(
    ("body", "keyword", "path"),
    [
        ("model: 'x'\n", "required", ""),
        ("model: 3\ntests: []\n", "type", "/model"),
        (
            "model: m\ntuples: [{user: 'anne', relation: r, object: 'doc:1'}]\ntests: []\n",
            "format",
            "/tuples/0/user",
        ),
        (
            "model: m\ntests: [{name: t, check: [{user: 'user:a', object: 'doc:1', "
            "assertions: {r: 'yes'}}]}]\n",
            "type",
            "/tests/0/check/0/assertions/r",
        ),
        (
            "model: m\ntests: [{name: t, list_users: [{object: 'doc:1', user_filter: [{}], "
            "assertions: {}}]}]\n",
            "required",
            "/tests/0/list_users/0/user_filter/0",
        ),
        ("- not a mapping\n", "type", ""),
    ],
)
def test_schema_errors_point_at_the_offending_value(
    tmp_path: Path, body: str, keyword: str, path: str
) -> None:
    store = _write(tmp_path, "s.fga.yaml", body)
    with pytest.raises(StoreFileError) as info:
        load_store_file(store)
    first: dict[str, Any] = info.value.schema_errors[0]
    assert (first["keyword"], first["instancePath"]) == (keyword, path)


def test_model_errors_surface_as_language_errors(tmp_path: Path) -> None:
    store = _write(
        tmp_path,
        "s.fga.yaml",
        "model: |\n  model\n    schema 1.1\n  type user\n    relations\n      define a: b\ntests: []\n",
    )
    with pytest.raises(ModelValidationError):
        load_store_file(store)
    store = _write(tmp_path, "t.fga.yaml", "model: 'type user'\ntests: []\n")
    with pytest.raises(DSLSyntaxError):
        load_store_file(store)


def test_missing_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(StoreFileError):
        load_store_file(tmp_path / "absent.fga.yaml")
    store = _write(tmp_path, "s.fga.yaml", "model_file: nope.fga\ntests: []\n")
    with pytest.raises(StoreFileError, match=r"nope\.fga"):
        load_store_file(store)


def test_tuple_files_lists_several_files_in_order(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "a.csv",
        "user_type,user_id,user_relation,relation,object_type,object_id\nuser,anne,,viewer,doc,1\n",
    )
    _write(tmp_path, "b.yaml", "- user: user:bob\n  relation: viewer\n  object: doc:1\n")
    store = _write(
        tmp_path,
        "s.fga.yaml",
        f"model: |\n  {MODEL.replace(chr(10), chr(10) + '  ')}\ntuple_files: [a.csv, b.yaml]\n"
        "tests:\n  - name: t\n    tuple_files: [b.yaml]\n",
    )
    loaded = load_store_file(store)
    assert [t.user for t in loaded.tuples] == ["user:anne", "user:bob"]
    assert [t.user for t in loaded.tests[0].tuples] == ["user:bob"]
    bad = _write(tmp_path, "bad.fga.yaml", "model: m\ntuple_files: a.csv\ntests: []\n")
    with pytest.raises(StoreFileError) as info:
        load_store_file(bad)
    assert info.value.schema_errors[0]["instancePath"] == "/tuple_files"
