"""OpenFGA's 137 conformance tests (925 assertions), one pytest case per test and assertion kind, plus the
contextual-tuple re-run of every single-stage test. The harness rules are in ``conformance.py``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fga.engine.conformance import _ASSERTION_KEYS, CASES_FILE, KINDS, load_cases, run_case

try:
    from tessera.fga.language import transform_dsl_to_json
except ImportError:  # pragma: no cover - only while the DSL parser is missing
    transform_dsl_to_json = None

CASES = load_cases()


def _params() -> list[Any]:
    out = []
    for case in CASES:
        for kind in KINDS:
            key = _ASSERTION_KEYS[kind]
            if not any(stage.get(key) for stage in case["stages"]):
                continue
            out.append(pytest.param(case, kind, False, id=f"{case['name']}-{kind}"))
            if len(case["stages"]) == 1:
                out.append(pytest.param(case, kind, True, id=f"{case['name']}-{kind}-contextual"))
    return out


@pytest.mark.skipif(not CASES, reason=f"OpenFGA reference cases not found at {CASES_FILE}")
@pytest.mark.skipif(transform_dsl_to_json is None, reason="tessera.fga.language (the DSL parser) is missing")
@pytest.mark.parametrize(("case", "kind", "contextual"), _params())
async def test_openfga_conformance(case: dict[str, Any], kind: str, contextual: bool) -> None:
    outcome = await run_case(case, kind, contextual=contextual, dsl_to_json=transform_dsl_to_json)
    assert not outcome.failures, "\n".join(outcome.failures)
    assert outcome.passed > 0


def test_reference_cases_are_all_there() -> None:
    if not CASES:
        pytest.skip(f"OpenFGA reference cases not found at {CASES_FILE}")
    assert len(CASES) == 137
    total = sum(
        len(stage.get(k) or [])
        for case in CASES
        for stage in case["stages"]
        for k in ("checkAssertions", "listObjectsAssertions", "listUsersAssertions")
    )
    assert total == 925
