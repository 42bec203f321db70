"""The RAG filter against per-object Check on generated stores: conditions (from the tuple and from the
request, and missing), wildcards, exclusions, intersections, tuple-to-userset, nested teams and contextual
tuples, on the memory store, SQLite and PostgreSQL, and through each of the filter's strategies (set at a
time, with types too big to read whole, with a user's own tuples read from the user's side, from the user's
side, per object).

For every request the expected answer is computed candidate by candidate with Check: the filter must
return exactly the candidates Check allows, in input order, or fail when Check fails for one of them."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tessera.core.clock import Clock
from tessera.fga.engine.errors import FGAError
from tessera.fga.engine.filter import SetEvaluator
from tessera.fga.engine.memory import MemoryDatastore
from tessera.fga.engine.service import CheckRequest, EngineConfig, FGAService, FilterRequest
from tessera.fga.engine.store import Datastore
from tessera.fga.engine.tuples import TupleKey
from tessera.fga.language import transform_dsl_to_json
from tessera.fga.sql.store import SQLDatastore
from tessera.storage.database import Database
from tests.fga.engine.helpers import tk

MODEL = """model
  schema 1.1
type user
type team
  relations
    define member: [user, team#member]
type org
  relations
    define owner: [user]
    define member: [user, user with business_hours, team#member] or owner
    define reader: [user:*, org#member]
type repo
  relations
    define owner: [org, org with on_network]
    define blocked: [user, team#member with business_hours]
    define admin: [user, team#member]
    define writer: [user, user:* with on_network, team#member] or admin
    define reader: ([user, user:*, team#member] or writer or reader from owner) but not blocked
    define triager: writer and reader
type document
  relations
    define repo: [repo]
    define banned: [user]
    define viewer: ([user, team#member, user with on_network] or reader from repo) but not banned
    define editor: triager from repo and viewer

condition business_hours(hour: int) {
  hour >= 9 && hour < 17
}
condition on_network(ip: ipaddress, cidr: string) {
  ip.in_cidr(cidr)
}
"""

USERS = ["user:u0", "user:u2", "user:u4", "team:t2#member"]
DOCS = [f"document:d{d}" for d in range(40)] + ["document:none"]
# The request contexts: every condition true, every condition false, and none (a condition missing its
# parameter is an error in Check, so the filter must fail exactly when a candidate's check does).
CONTEXTS: list[dict[str, Any]] = [
    {"hour": 10, "ip": "10.1.2.3"},
    {"hour": 20, "ip": "192.0.2.1"},
    {},
]
CONTEXTUAL = [
    tk("repo:r0", "admin", "user:u1"),
    tk("team:t5", "member", "user:u4"),
    tk("document:d3", "banned", "user:u0"),
    tk("document:d4", "viewer", "user:u2", "on_network", {"cidr": "10.0.0.0/8"}),
]
NETWORK = {"cidr": "10.0.0.0/8"}


def graph(seed: int) -> list[TupleKey]:
    rnd = random.Random(seed)
    user = lambda: f"user:u{rnd.randrange(6)}"  # noqa: E731 - a short local generator
    team = lambda: f"team:t{rnd.randrange(8)}#member"  # noqa: E731
    out = [tk(f"team:t{i}", "member", f"team:t{rnd.randrange(i)}#member") for i in range(1, 8)]
    out += [tk(f"team:t{rnd.randrange(8)}", "member", user()) for _ in range(8)]
    for o in range(3):
        out.append(tk(f"org:o{o}", "owner", user()))
        out.append(tk(f"org:o{o}", "member", user(), "business_hours"))
        out.append(tk(f"org:o{o}", "member", team()))
        out.append(tk(f"org:o{o}", "reader", "user:*" if rnd.random() < 0.3 else f"org:o{o}#member"))
    for r in range(12):
        if rnd.random() < 0.3:
            out.append(tk(f"repo:r{r}", "owner", f"org:o{rnd.randrange(3)}", "on_network", NETWORK))
        else:
            out.append(tk(f"repo:r{r}", "owner", f"org:o{rnd.randrange(3)}"))
        for rel in ("admin", "writer", "reader"):
            if rnd.random() < 0.4:
                out.append(tk(f"repo:r{r}", rel, rnd.choice([user(), team()])))
        if rnd.random() < 0.2:
            out.append(tk(f"repo:r{r}", "reader", "user:*"))
        if rnd.random() < 0.2:
            out.append(tk(f"repo:r{r}", "writer", "user:*", "on_network", NETWORK))
        if rnd.random() < 0.3:
            out.append(tk(f"repo:r{r}", "blocked", user()))
        if rnd.random() < 0.2:
            out.append(tk(f"repo:r{r}", "blocked", team(), "business_hours"))
    for d in range(50):
        out.append(tk(f"document:d{d}", "repo", f"repo:r{rnd.randrange(12)}"))
        if rnd.random() < 0.15:
            out.append(tk(f"document:d{d}", "viewer", rnd.choice([user(), team()])))
        if rnd.random() < 0.1:
            out.append(tk(f"document:d{d}", "viewer", user(), "on_network", NETWORK))
        if rnd.random() < 0.1:
            out.append(tk(f"document:d{d}", "banned", user()))
    return list(dict.fromkeys(out))


async def _store(ds: Datastore, seed: int) -> tuple[FGAService, str]:
    svc = FGAService(ds)
    sid = (await svc.create_store("generated")).id
    await svc.write_authorization_model(sid, transform_dsl_to_json(MODEL))
    tuples = graph(seed)
    for i in range(0, len(tuples), 100):
        await svc.write(sid, tuples[i : i + 100])
    return svc, sid


async def _per_object(
    svc: FGAService, sid: str, user: str, relation: str, context: dict[str, Any], ctx: list[TupleKey]
) -> tuple[list[str], set[str]]:
    """(the candidates Check allows, the error codes Check fails with)."""
    allowed: list[str] = []
    errors: set[str] = set()
    for doc in DOCS:
        req = CheckRequest(
            sid,
            TupleKey(doc, relation, user),
            context=context,
            contextual_tuples=ctx,
            consistency="HIGHER_CONSISTENCY",
        )
        try:
            if (await svc.check(req)).allowed:
                allowed.append(doc)
        except FGAError as exc:
            errors.add(exc.code)
    return allowed, errors


CONFIGS = {
    # The default: set at a time from the link index (engine/links.py).
    "default": EngineConfig(),
    "index, no prefetch": EngineConfig(object_prefetch=0, filter_reverse_budget=0),
    # Without the index: every layer from storage.
    "storage": EngineConfig(filter_index_max=0),
    "sets only": EngineConfig(filter_reverse_budget=0, filter_index_max=0),
    "big types": EngineConfig(filter_reverse_budget=0, object_prefetch=1, filter_index_max=0),
    "no prefetch": EngineConfig(object_prefetch=0, filter_index_max=0),
    # A layer's own tuples from the user's side (reverse index) whenever the evaluation allows.
    "own side": EngineConfig(filter_probe_cost=0, filter_index_max=0),
}


def _count_own_reads(ds: Datastore, seen: dict[str, int]) -> None:
    """Count the datastore's reads of a user's own tuples (the "own side" strategy) that were answered."""
    read = ds.read_users_rows  # type: ignore[attr-defined]

    async def counted(*args: Any, **kwargs: Any) -> Any:
        rows = await read(*args, **kwargs)
        seen["own reads"] += rows is not None
        return rows

    ds.read_users_rows = counted  # type: ignore[attr-defined]


def _count_index_layers(monkeypatch: pytest.MonkeyPatch, seen: dict[str, int]) -> None:
    """Count the layers the set-at-a-time filter answered from the link index (engine/links.py)."""
    indexed = SetEvaluator._indexed

    async def counted(self: SetEvaluator, *args: Any) -> Any:
        got = await indexed(self, *args)
        seen["index layers"] += got is not None
        return got

    monkeypatch.setattr(SetEvaluator, "_indexed", counted)


async def _agree(ds: Datastore, seed: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    svc, sid = await _store(ds, seed)
    filters = {name: FGAService(ds, config=config) for name, config in CONFIGS.items()}
    seen = {"allowed": 0, "failed": 0, "requests": 0, "own reads": 0, "index layers": 0}
    _count_own_reads(ds, seen)
    _count_index_layers(monkeypatch, seen)
    for user in USERS:
        for relation in ("viewer", "editor"):
            for context in CONTEXTS:
                for ctx in ([], CONTEXTUAL):
                    expected, errors = await _per_object(svc, sid, user, relation, context, ctx)
                    for name, fsvc in filters.items():
                        req = FilterRequest(sid, user, relation, DOCS, context=context, contextual_tuples=ctx)
                        where = (name, user, relation, context, bool(ctx))
                        seen["requests"] += 1
                        if errors:
                            with pytest.raises(FGAError) as failed:
                                await fsvc.filter_objects(req)
                            assert failed.value.code in errors, where
                            seen["failed"] += 1
                        else:
                            assert await fsvc.filter_objects(req) == expected, where
                            seen["allowed"] += len(expected)
    return seen


@pytest.mark.parametrize("seed", range(4))
async def test_filter_agrees_with_check_on_generated_stores_in_memory(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = await _agree(MemoryDatastore(), seed, monkeypatch)
    # The stores exercise both answers and the error path, the user's side of the layer reads, and the
    # link index.
    assert seen["allowed"] > 30 and seen["failed"] > 0 and seen["own reads"] > 10, seen
    assert seen["index layers"] > 50, seen


async def test_filter_agrees_with_check_on_generated_stores_in_sql(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = SQLDatastore(database, Clock())
    try:
        seen = await _agree(ds, 11, monkeypatch)
    finally:
        await ds.aclose()
    assert seen["allowed"] > 30 and seen["failed"] > 0 and seen["own reads"] > 10, seen
    assert seen["index layers"] > 50, seen
