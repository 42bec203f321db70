"""Locate OpenFGA's language test data (shared/reference/openfga/language-tests) and load its cases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

_CANDIDATES = [
    Path(__file__).resolve().parents[3] / ".." / "shared" / "reference" / "openfga" / "language-tests",
    Path("/work/shared/reference/openfga/language-tests"),
]


def data_dir() -> Path:
    for candidate in _CANDIDATES:
        if candidate.is_dir():
            return candidate.resolve()
    raise RuntimeError(f"OpenFGA language test data not found in {[str(c) for c in _CANDIDATES]}")


def load_cases(filename: str) -> list[Any]:
    with (data_dir() / filename).open(encoding="utf-8") as fh:
        return list(yaml.safe_load(fh) or [])


def case_params(filename: str) -> list[Any]:
    """One pytest param per case, id'd by index and name so failures are easy to find."""
    return [
        pytest.param(case, id=f"{index:03d}-{case.get('name', '')}"[:90])
        for index, case in enumerate(load_cases(filename))
    ]


def subdirs(name: str) -> list[Path]:
    return sorted(p for p in (data_dir() / name).iterdir() if p.is_dir())


def normalize_error(expected: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any]:
    """Keep the fields of ``actual`` that the expected error names (OpenFGA's cases list only some)."""
    out: dict[str, Any] = {}
    for key, value in expected.items():
        if key == "metadata":
            meta = actual.get("metadata") or {}
            out["metadata"] = {k: meta.get(k) for k in (value or {})}
        else:
            out[key] = actual.get(key)
    return out
