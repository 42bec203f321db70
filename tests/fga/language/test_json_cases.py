"""JSON model validation, JSON -> DSL support limits and object ids (OpenFGA's shared cases)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tessera.fga.language import (
    ModelValidationError,
    transform_dsl_to_json,
    transform_json_to_dsl,
    validate_json_model,
)
from tessera.fga.language.identifiers import is_valid_object_id, parse_object, parse_user

from .data import case_params, normalize_error


@pytest.mark.parametrize("case", case_params("json-validation-cases.yaml"))
def test_json_validation_case(case: dict[str, Any]) -> None:
    model = json.loads(case["json"])
    expected = case.get("expected_errors") or []
    if not expected:
        validate_json_model(model)
        return
    with pytest.raises(ModelValidationError) as info:
        validate_json_model(model)
    actual = [e.to_dict() for e in info.value.errors]
    assert [normalize_error(exp, act) for exp, act in zip(expected, actual, strict=True)] == expected
    assert len(actual) == len(expected)


@pytest.mark.parametrize("case", case_params("json-syntax-transformer-validation-cases.yaml"))
def test_json_to_dsl_case(case: dict[str, Any]) -> None:
    model = json.loads(case["json"])
    if case.get("valid", True):
        dsl = transform_json_to_dsl(model)
        # What was written must read back to the same relations (children of a union may be reordered
        # to put the direct assignment first, which does not change the meaning).
        back = transform_dsl_to_json(dsl, validate=False)
        assert [t["type"] for t in back["type_definitions"]] == [t["type"] for t in model["type_definitions"]]
        for before, after in zip(model["type_definitions"], back["type_definitions"], strict=True):
            assert _canonical(before["relations"]) == _canonical(after["relations"])
        return
    with pytest.raises(ModelValidationError) as info:
        transform_json_to_dsl(model)
    assert [e.msg for e in info.value.errors] == [case["error_message"]]


def _canonical(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _canonical(v) for k, v in node.items()}
        for key in ("union", "intersection"):
            if key in out:
                out[key]["child"] = sorted(out[key]["child"], key=lambda c: json.dumps(c, sort_keys=True))
        return out
    if isinstance(node, list):
        return [_canonical(v) for v in node]
    return node


@pytest.mark.parametrize("case", case_params("object-id-validation-cases.yaml"))
def test_object_id_case(case: dict[str, Any]) -> None:
    assert is_valid_object_id(case["object_id"]) is case["valid"]
    parsed = parse_object(f"document:{case['object_id']}")
    assert (parsed is not None) is case["valid"]


def test_user_references() -> None:
    assert str(parse_user("user:anne")) == "user:anne"
    wildcard = parse_user("user:*")
    assert wildcard is not None and wildcard.wildcard
    userset = parse_user("group:eng#member")
    assert userset is not None and userset.relation == "member"
    for bad in (
        "user",
        "user:",
        "user:a:b",
        "group:*#member",
        "group:eng#",
        "group:eng#a#b",
        ":x",
        "user:*x",
    ):
        assert parse_user(bad) is None, bad
