"""Hostile and malformed input: errors, never crashes, and the server-compatible validation mode."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tessera.fga.language import (
    DSLSyntaxError,
    ModelValidationError,
    transform_dsl_to_json,
    transform_json_to_dsl,
    validate_json_model,
)

HEADER = "model\n  schema 1.1\ntype user\ntype doc\n  relations\n"


def _model(relations: dict[str, Any], meta: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "schema_version": "1.1",
        "type_definitions": [
            {"type": "user", "relations": {}, "metadata": None},
            {"type": "doc", "relations": relations, "metadata": {"relations": meta or {}}},
        ],
    }


@pytest.mark.parametrize(
    "model",
    [
        [],
        "model",
        {"schema_version": 1.1},
        {"schema_version": "1.1", "type_definitions": {}},
        {"schema_version": "1.1", "type_definitions": ["user"]},
        {"schema_version": "1.1", "type_definitions": [{"type": 3}]},
        {"schema_version": "1.1", "type_definitions": [{"type": "doc", "relations": []}]},
        _model({"a": {"this": {}, "computedUserset": {"relation": "b"}}}),
        _model({"a": {"unknown": {}}}),
        _model({"a": {"union": {"child": []}}}),
        _model({"a": {"difference": {"base": {"this": {}}}}}),
        _model({"a": {"tupleToUserset": {"tupleset": {}, "computedUserset": {"relation": "x"}}}}),
        _model({"a": {"this": {}}}, {"a": {"directly_related_user_types": "user"}}),
        _model(
            {"a": {"this": {}}},
            {"a": {"directly_related_user_types": [{"type": "user", "relation": "x", "wildcard": {}}]}},
        ),
        {"schema_version": "1.1", "type_definitions": [], "conditions": {"c": {"parameters": {"x": {}}}}},
    ],
)
def test_malformed_json_models_are_rejected_with_errors(model: Any) -> None:
    with pytest.raises(ModelValidationError) as info:
        validate_json_model(model)
    assert info.value.errors and all(e.msg for e in info.value.errors)


def test_deep_json_rewrites_are_refused_not_crashing() -> None:
    node: dict[str, Any] = {"computedUserset": {"relation": "a"}}
    for _ in range(5000):
        node = {"union": {"child": [node, {"computedUserset": {"relation": "a"}}]}}
    model = _model({"a": {"this": {}}, "b": node}, {"a": {"directly_related_user_types": [{"type": "user"}]}})
    with pytest.raises(ModelValidationError, match="nests deeper"):
        validate_json_model(model)
    with pytest.raises(ModelValidationError, match="nests deeper"):
        transform_json_to_dsl(model)


def test_a_long_chain_of_relations_is_handled() -> None:
    relations: dict[str, Any] = {"r0": {"this": {}}}
    meta = {"r0": {"directly_related_user_types": [{"type": "user"}]}}
    for i in range(1, 3000):
        relations[f"r{i}"] = {"computedUserset": {"relation": f"r{i - 1}"}}
    validate_json_model(_model(relations, meta))  # valid: r2999 -> ... -> r0, which is directly assignable


def test_a_long_chain_of_types_through_tuplesets_is_valid() -> None:
    lines = ["model", "  schema 1.1", "type user", "type t0", "  relations", "    define viewer: [user]"]
    for i in range(1, 3000):
        lines += [
            f"type t{i}",
            "  relations",
            f"    define parent: [t{i - 1}]",
            "    define viewer: viewer from parent",
        ]
    model = transform_dsl_to_json("\n".join(lines) + "\n")
    assert len(model["type_definitions"]) == 3001
    # Cut the chain at the bottom (t0's viewer only from itself): no type has an entrypoint any more; a
    # refusal, not a crash, however deep the analysis has to go.
    model["type_definitions"][1]["metadata"]["relations"]["viewer"]["directly_related_user_types"] = [
        {"type": "t0", "relation": "viewer"}
    ]
    with pytest.raises(ModelValidationError) as info:
        validate_json_model(model)
    assert info.value.errors


def test_deep_parentheses_in_dsl_are_a_syntax_error() -> None:
    dsl = HEADER + "    define a: [user]\n    define b: " + "(" * 3000 + "a" + ")" * 3000 + "\n"
    with pytest.raises(DSLSyntaxError):
        transform_dsl_to_json(dsl)


def test_binary_and_control_characters_are_syntax_errors() -> None:
    for junk in ("\x00", "\u202e", "é", "@", "\r"):
        with pytest.raises(DSLSyntaxError):
            transform_dsl_to_json(HEADER + f"    define a{junk}b: [user]\n")


def test_assignable_relations_need_types_and_types_need_assignable_relations() -> None:
    with pytest.raises(ModelValidationError, match="lists no directly related user types"):
        validate_json_model(_model({"a": {"this": {}}}, {"a": {"directly_related_user_types": []}}))
    with pytest.raises(ModelValidationError, match="is not directly assignable"):
        validate_json_model(
            _model(
                {"a": {"this": {}}, "b": {"computedUserset": {"relation": "a"}}},
                {
                    "a": {"directly_related_user_types": [{"type": "user"}]},
                    "b": {"directly_related_user_types": [{"type": "user"}]},
                },
            )
        )


def test_strict_false_accepts_what_the_openfga_server_accepts() -> None:
    dsl = (
        HEADER
        + "    define a: [user, user]\n    define b: a or a\n"
        + "condition unused(x: int) {\n  x < 1\n}\n"
    )
    model = transform_dsl_to_json(dsl, validate=False)
    with pytest.raises(ModelValidationError) as info:
        validate_json_model(model)
    assert sorted(e.error_type or "" for e in info.value.errors) == [
        "condition-not-used",
        "duplicated-error",
        "duplicated-error",
    ]
    validate_json_model(copy.deepcopy(model), strict=False)
    # Real errors stay errors in either mode.
    model["type_definitions"][1]["relations"]["b"] = {"computedUserset": {"relation": "missing"}}
    with pytest.raises(ModelValidationError, match="`missing` does not exist"):
        validate_json_model(model, strict=False)


def test_validation_does_not_change_the_model() -> None:
    model = transform_dsl_to_json(HEADER + "    define a: [user]\n    define b: a from a\n", validate=False)
    before = copy.deepcopy(model)
    with pytest.raises(ModelValidationError):
        validate_json_model(model)
    assert model == before


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("x & 1", "token recognition error at: '& '"),
        ("x = 1", "token recognition error at: '= '"),
        ("x |y", "token recognition error at: '|y'"),
        ('x == "open', "token recognition error at: '\"open"),
        ("x $ 1", "token recognition error at: '$'"),
    ],
)
def test_condition_bodies_are_lexed_as_cel(body: str, error: str) -> None:
    dsl = HEADER + "    define a: [user with c]\n" + f"condition c(x: int) {{\n  {body}\n}}\n"
    with pytest.raises(DSLSyntaxError) as info:
        transform_dsl_to_json(dsl)
    assert info.value.errors[0].msg.startswith(error)


def test_comments_in_condition_bodies_are_dropped_as_openfga_does() -> None:
    dsl = (
        HEADER
        + "    define a: [user with c]\n"
        + "condition c(x: int) {\n  # lead\n  x < 1 # c\n  && x > 0# d\n}\n"
    )
    model = transform_dsl_to_json(dsl)
    assert model["conditions"]["c"]["expression"] == "x < 1\n  && x > 0# d"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
_model_like = st.fixed_dictionaries(
    {
        "schema_version": st.sampled_from(["1.1", "1.2", 1, None]),
        "type_definitions": st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["user", "doc", 3]), "relations": _json, "metadata": _json}
            ),
            max_size=3,
        ),
    },
    optional={"conditions": _json},
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_json, _model_like))
def test_arbitrary_json_never_crashes_the_validator_or_the_writer(model: Any) -> None:
    try:
        validate_json_model(model)
    except ModelValidationError as exc:
        assert exc.errors
    try:
        transform_json_to_dsl(model)
    except ModelValidationError as exc:
        assert exc.errors


_dsl_alphabet = st.sampled_from(
    [
        "model",
        "schema",
        "1.1",
        "type",
        "relations",
        "define",
        "user",
        "doc",
        "a",
        ":",
        "[",
        "]",
        "(",
        ")",
        ",",
        "#",
        "*",
        " or ",
        " and ",
        " but not ",
        " from ",
        " with ",
        "condition",
        "{",
        "}",
        "<",
        ">",
        "int",
        "\n",
        "  ",
        "\t",
        "'",
        '"',
        "module",
        "extend",
        "&",
        "=",
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_dsl_alphabet, max_size=40).map("".join))
def test_arbitrary_text_is_a_model_or_a_syntax_error(text: str) -> None:
    try:
        model = transform_dsl_to_json(text, validate=False)
    except DSLSyntaxError as exc:
        assert exc.errors and all(e.line is not None for e in exc.errors)
        return
    assert isinstance(model, dict)
