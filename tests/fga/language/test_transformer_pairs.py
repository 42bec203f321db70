"""OpenFGA's DSL <-> JSON transformer pairs (language-tests/transformer), both directions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tessera.fga.language import transform_dsl_to_json, transform_json_to_dsl

from .data import subdirs

PAIRS = [pytest.param(d, id=d.name) for d in subdirs("transformer")]


@pytest.mark.parametrize("case", PAIRS)
def test_dsl_to_json(case: Path) -> None:
    dsl = (case / "authorization-model.fga").read_text(encoding="utf-8")
    expected = json.loads((case / "authorization-model.json").read_text(encoding="utf-8"))
    # Dict equality ignores key order, as OpenFGA's own test does; lists (types, children, restrictions)
    # must match in order.
    assert transform_dsl_to_json(dsl, validate=False) == expected


@pytest.mark.parametrize("case", PAIRS)
def test_json_to_dsl(case: Path) -> None:
    expected = (case / "authorization-model.fga").read_text(encoding="utf-8")
    model = json.loads((case / "authorization-model.json").read_text(encoding="utf-8"))
    assert transform_json_to_dsl(model) == expected
