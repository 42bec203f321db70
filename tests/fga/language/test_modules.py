"""Modular models: OpenFGA's transformer-module cases and fga-mod-transformer-cases.yaml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tessera.fga.language import ModuleError, transform_json_to_dsl, transform_module_files
from tessera.fga.language.api import parse_dsl_to_json
from tessera.fga.language.modules import module_names, parse_mod_file, transform_modules

from .data import case_params, normalize_error, subdirs

MODULE_CASES = [pytest.param(d, id=d.name) for d in subdirs("transformer-module")]


def _module_files(case: Path) -> dict[str, str]:
    folder = case / "module"
    return {
        p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8") for p in sorted(folder.rglob("*.fga"))
    }


def _canonical(errors: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(e, sort_keys=True) for e in errors)


@pytest.mark.parametrize("case", MODULE_CASES)
def test_module_case(case: Path) -> None:
    expected_modules = case / "expected_modules.json"
    if not (case / "module").is_dir():
        # Only the combined JSON is given: the modules it is made of must be recovered from it.
        model = json.loads((case / "authorization-model.json").read_text(encoding="utf-8"))
        assert module_names(model) == json.loads(expected_modules.read_text(encoding="utf-8"))
        return
    files = _module_files(case)
    errors_file = case / "expected_errors.json"
    if errors_file.exists():
        expected = json.loads(errors_file.read_text(encoding="utf-8"))
        with pytest.raises(ModuleError) as info:
            transform_modules(files)
        actual = [e.to_dict() for e in info.value.errors]
        assert len(actual) == len(expected), actual
        # OpenFGA lists these errors in the order its implementation meets them; compare as a multiset.
        got = [
            normalize_error(exp, act)
            for exp, act in zip(expected, _match_order(expected, actual), strict=True)
        ]
        assert _canonical(got) == _canonical(expected)
        return
    expected_model = json.loads((case / "authorization-model.json").read_text(encoding="utf-8"))
    model = transform_modules(files)
    assert model == expected_model
    assert module_names(model) == json.loads(expected_modules.read_text(encoding="utf-8"))
    # The combined model written back as DSL parses to the same types and relations.
    combined = transform_json_to_dsl(model)
    reparsed, _ = parse_dsl_to_json(combined)
    assert _strip_sources(reparsed) == _strip_sources(model)
    # With source information, every type says where it came from, as combined-sourceinfo.fga does.
    with_sources = transform_json_to_dsl(model, include_source_information=True)
    expected_lines = set((case / "combined-sourceinfo.fga").read_text(encoding="utf-8").splitlines())
    assert set(with_sources.splitlines()) == expected_lines


def _match_order(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pair each expected error with an actual error of the same message (multiset comparison)."""
    remaining = list(actual)
    ordered = []
    for exp in expected:
        index = next(
            (
                i
                for i, a in enumerate(remaining)
                if a.get("msg") == exp.get("msg")
                and a.get("file") == exp.get("file")
                and a.get("line") == exp.get("line")
            ),
            None,
        )
        if index is None:
            index = next((i for i, a in enumerate(remaining) if a.get("msg") == exp.get("msg")), 0)
        ordered.append(remaining.pop(index))
    return ordered


def _strip_sources(model: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(model))
    out.pop("schema_version", None)
    for t in out.get("type_definitions") or []:
        meta = t.get("metadata") or {}
        meta.pop("module", None)
        meta.pop("source_info", None)
        for rel in (meta.get("relations") or {}).values():
            rel.pop("module", None)
            rel.pop("source_info", None)
        if not meta:
            t["metadata"] = None
    for c in (out.get("conditions") or {}).values():
        c.pop("metadata", None)
    out["type_definitions"] = sorted(out.get("type_definitions") or [], key=lambda t: t["type"])
    return out


@pytest.mark.parametrize("case", case_params("fga-mod-transformer-cases.yaml"))
def test_fga_mod_case(case: dict[str, Any]) -> None:
    if "json" in case:
        assert parse_mod_file(case["modFile"]).to_dict() == json.loads(case["json"])
        return
    with pytest.raises(ModuleError) as info:
        parse_mod_file(case["modFile"])
    actual = [e.to_dict() for e in info.value.errors]
    expected = case["expected_errors"]
    assert [normalize_error(exp, act) for exp, act in zip(expected, actual, strict=True)] == expected
    assert len(actual) == len(expected)


def test_transform_module_files_reads_the_files_fga_mod_lists() -> None:
    case = subdirs("transformer-module")[0]
    files = _module_files(case)
    fga_mod = "schema: '1.2'\ncontents:\n" + "".join(f"  - {name}\n" for name in files)
    model = transform_module_files(fga_mod, files)
    assert model == json.loads((case / "authorization-model.json").read_text(encoding="utf-8"))


def test_transform_module_files_rejects_a_listed_file_that_is_missing() -> None:
    with pytest.raises(ModuleError) as info:
        transform_module_files(
            "schema: '1.2'\ncontents:\n  - core.fga\n  - gone.fga\n",
            {"core.fga": "module core\n\ntype user\n"},
        )
    assert [e.msg for e in info.value.errors] == ["file gone.fga listed in fga.mod was not found"]


def test_fga_mod_rejects_traversal_even_when_encoded() -> None:
    with pytest.raises(ModuleError) as info:
        parse_mod_file("schema: '1.2'\ncontents:\n  - a/%2E%2E/%2e%2e/b.fga\n  - C:/x.fga\n")
    assert [e.msg for e in info.value.errors] == [
        "invalid contents item a/%2E%2E/%2e%2e/b.fga",
        "invalid contents item C:/x.fga",
    ]


def test_module_files_cannot_both_define_a_type() -> None:
    files = {
        "a.fga": "module a\n\ntype user\n\ntype doc\n  relations\n    define viewer: [user]\n",
        "b.fga": "module b\n\ntype doc\n  relations\n    define editor: [user]\n\nextend type nope\n",
    }
    with pytest.raises(ModuleError) as info:
        transform_modules(files)
    # The messages and positions `fga model transform --file fga.mod` gives for the same files.
    assert [(e.file, e.msg, e.line, e.column) for e in info.value.errors] == [
        ("b.fga", "duplicate type definition doc", (2, 2), (5, 8)),
        ("b.fga", "extended type nope does not exist", (6, 6), (12, 16)),
    ]
