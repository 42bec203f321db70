"""OpenFGA's conformance cases (consolidated_1_1_tests.yaml), run with the rules of OpenFGA's own harness
(see ../shared/reference/openfga/NOTICE.md):

* every stage of a test shares one store: the stage's model is written, then its tuples; tuples written under
  an earlier stage's model stay and must be ignored when the current model rejects them;
* single-stage tests run a second time with no stored tuples and all stage tuples sent as contextual tuples;
* ListObjects and ListUsers results are compared unordered, and every returned object or user is checked again
  with Check, which must allow it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tessera.fga.engine.errors import FGAError
from tessera.fga.engine.list_users import UserFilter
from tessera.fga.engine.memory import MemoryDatastore
from tessera.fga.engine.service import CheckRequest, FGAService, ListObjectsRequest, ListUsersRequest
from tessera.fga.engine.tuples import TupleKey

REFERENCE = Path(
    os.environ.get(
        "TESSERA_OPENFGA_REFERENCE", Path(__file__).resolve().parents[4] / "shared/reference/openfga"
    )
)
CASES_FILE = REFERENCE / "consolidated_1_1_tests.yaml"
KINDS = ("check", "list_objects", "list_users")
_ASSERTION_KEYS = {
    "check": "checkAssertions",
    "list_objects": "listObjectsAssertions",
    "list_users": "listUsersAssertions",
}


def load_cases() -> list[dict[str, Any]]:
    if not CASES_FILE.exists():
        return []
    data = yaml.safe_load(CASES_FILE.read_text())
    return list(data["tests"])


def _keys(items: Any) -> list[TupleKey]:
    out = []
    for t in items or []:
        cond = t.get("condition") or None
        out.append(
            TupleKey(
                object=t["object"],
                relation=t["relation"],
                user=t["user"],
                condition_name=(cond or {}).get("name"),
                condition_context=(cond or {}).get("context"),
            )
        )
    return out


@dataclass
class Outcome:
    passed: int = 0
    failures: list[str] = field(default_factory=list)


async def run_case(case: Mapping[str, Any], kind: str, *, contextual: bool, dsl_to_json: Any) -> Outcome:
    """Run one test's assertions of one kind; ``contextual``: the re-run with stage tuples as contextual."""
    svc = FGAService(MemoryDatastore())
    store = await svc.create_store(str(case["name"])[:64])
    out = Outcome()
    for si, stage in enumerate(case["stages"]):
        model_id = await svc.write_authorization_model(store.id, dsl_to_json(stage["model"]))
        stage_tuples = _keys(stage.get("tuples"))
        if not contextual:
            for i in range(0, len(stage_tuples), 100):
                await svc.write(store.id, stage_tuples[i : i + 100], authorization_model_id=model_id)
        extra = stage_tuples if contextual else []
        for ai, a in enumerate(stage.get(_ASSERTION_KEYS[kind]) or []):
            where = f"stage {si} {kind} #{ai}"
            ctx_tuples = _keys(a.get("contextualTuples")) + extra
            context = a.get("context") or {}
            try:
                problem = await _assert_one(svc, store.id, model_id, kind, a, ctx_tuples, context)
            except FGAError as exc:
                problem = f"unexpected error {exc.error_code.value} {exc.message}"
            if problem:
                out.failures.append(f"{where}: {problem} :: {a}")
            else:
                out.passed += 1
    return out


async def _check(
    svc: FGAService,
    store_id: str,
    model_id: str,
    obj: str,
    rel: str,
    user: str,
    ctx: list[TupleKey],
    context: Any,
) -> bool:
    req = CheckRequest(store_id, TupleKey(obj, rel, user), model_id, ctx, context)
    return (await svc.check(req)).allowed


async def _assert_one(
    svc: FGAService,
    store_id: str,
    model_id: str,
    kind: str,
    a: Mapping[str, Any],
    ctx: list[TupleKey],
    context: Any,
) -> str:
    code = a.get("errorCode")
    try:
        if kind == "check":
            t = a["tuple"]
            got: Any = await _check(
                svc, store_id, model_id, t["object"], t["relation"], t["user"], ctx, context
            )
            if code is not None:
                return f"expected error {code}, got allowed={got}"
            if got != a["expectation"]:
                return f"expected {a['expectation']}, got {got}"
            return ""
        r = a["request"]
        if kind == "list_objects":
            resp = await svc.list_objects(
                ListObjectsRequest(store_id, r["type"], r["relation"], r["user"], model_id, ctx, context)
            )
            got = sorted(resp.objects)
            if code is not None:
                return f"expected error {code}, got {got}"
            want = sorted(a.get("expectation") or [])
            if got != want:
                return f"expected {want}, got {got}"
            for obj in got:
                if not await _check(svc, store_id, model_id, obj, r["relation"], r["user"], ctx, context):
                    return f"returned {obj} but Check denies it"
            return ""
        filters = []
        for f in r["filters"]:
            ftype, _, frel = str(f).partition("#")
            filters.append(UserFilter(ftype, frel or None))
        uresp = await svc.list_users(
            ListUsersRequest(store_id, r["object"], r["relation"], filters, model_id, ctx, context)
        )
        got = sorted(uresp.users)
        if code is not None:
            return f"expected error {code}, got {got}"
        want = sorted(a.get("expectation") or [])
        if got != want:
            return f"expected {want}, got {got}"
        for user in got:
            if not await _check(svc, store_id, model_id, r["object"], r["relation"], user, ctx, context):
                return f"returned {user} but Check denies it"
        return ""
    except FGAError as exc:
        if code is None:
            raise
        if exc.error_code.value != code:
            return f"expected error {code}, got {exc.error_code.value} ({exc.message})"
        return ""
