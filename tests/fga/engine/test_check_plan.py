"""Check's compiled plans (engine/plan.py) against the rules walk they shortcut (LocalChecker without plans),
on generated models and tuples, on the memory store, SQLite and PostgreSQL: every answer, and every error
(depth limit, conditions), must be the same. The generated models mix what a plan evaluates (unions of direct
tuples, computed usersets, tuple-to-usersets, nested teams, wildcards) with what it must hand back
(intersections, exclusions, conditions, cycles); the tests also count that the plans did answer most
checks, so a plan that always handed back would fail them."""

from __future__ import annotations

import random
from typing import Any

import pytest

import tessera.fga.engine.check as check_module
import tessera.fga.engine.plan as plan_module
from tessera.fga.engine.check import CachedChecker, LocalChecker
from tessera.fga.engine.errors import FGAError
from tessera.fga.engine.memory import MemoryDatastore
from tessera.fga.engine.plan import compiled
from tessera.fga.engine.service import CheckRequest, EngineConfig, FGAService
from tessera.fga.engine.store import Datastore
from tessera.fga.engine.tuples import TupleKey, User
from tessera.fga.engine.typesystem import TypeSystem
from tessera.fga.language import transform_dsl_to_json
from tessera.fga.language.errors import ModelValidationError
from tessera.fga.sql.store import SQLDatastore
from tessera.storage.database import Database
from tests.fga.engine.helpers import tk

TYPES = ["team", "org", "repo", "doc"]
IDS = ["0", "1", "2"]
USERS = ["user:u0", "user:u1", "user:u2"]


def generated_model(rng: random.Random) -> tuple[str, dict[str, dict[str, list[str]]]]:
    """A model DSL and, per type and relation, the user strings its direct tuples may name (``{}`` for
    relations without direct tuples)."""
    nesting = rng.random() < 0.7
    lines = ["model", "  schema 1.1", "type user", "type team", "  relations"]
    refs: dict[str, dict[str, list[str]]] = {"team": {}}
    if nesting:
        lines.append("    define member: [user, user:*, team#member]")
    else:
        lines.append("    define member: [user] or lead")
        lines.append("    define lead: [user, team#member]")
        refs["team"]["lead"] = ["user", "team#member"]
    refs["team"]["member"] = ["user", "user:*", "team#member"] if nesting else ["user"]
    conditional = rng.random() < 0.1
    for i, tname in enumerate(TYPES[1:], start=1):
        parent = TYPES[rng.randrange(1, i + 1)]  # an earlier type or the type itself (recursion)
        lines += [f"type {tname}", "  relations", f"    define parent: [{parent}]"]
        refs[tname] = {"parent": [parent]}
        names = ["r0", "r1", "r2"]
        for j, rname in enumerate(names):
            allowed = ["user"]
            if rng.random() < 0.4:
                allowed.append("user:*")
            if rng.random() < 0.6:
                allowed.append("team#member")
            if i > 1 and rng.random() < 0.4:
                allowed.append(f"{TYPES[rng.randrange(1, i)]}#r{rng.randrange(3)}")
            if conditional and rng.random() < 0.5:
                allowed.append("user with hours")
            terms = [f"[{', '.join(allowed)}]"]
            refs[tname][rname] = allowed
            if j > 0 and rng.random() < 0.6:
                terms.append(names[rng.randrange(j)])
            elif j < 2 and rng.random() < 0.1:
                terms.append(names[j + 1])  # a computed cycle (r0 -> r1 -> r0) now and then
            if rng.random() < 0.6:
                terms.append(f"r{rng.randrange(3)} from parent")
            body = " or ".join(terms)
            pick = rng.random()
            if pick < 0.1:
                body = f"({body}) but not {names[(j + 1) % 3]}"
            elif pick < 0.15:
                body = f"({body}) and {names[(j + 2) % 3]}"
            lines.append(f"    define {rname}: {body}")
    if conditional:
        lines += ["", "condition hours(hour: int) {", "  hour < 12", "}"]
    return "\n".join(lines) + "\n", refs


def generated_tuples(rng: random.Random, refs: dict[str, dict[str, list[str]]]) -> list[TupleKey]:
    """Up to two tuples per object and relation, each of a kind the relation admits (conditional ones with
    the condition ``hours``, which the checks' context satisfies or not by chance)."""
    out: dict[tuple[str, str, str], TupleKey] = {}
    for tname, rels in refs.items():
        for rname, allowed in rels.items():
            for oid in IDS:
                for _ in range(rng.randrange(3)):
                    kind = rng.choice(allowed)
                    cond = None
                    if kind == "user:*":
                        user = "user:*"
                    elif kind == "user with hours":
                        user, cond = rng.choice(USERS), "hours"
                    elif "#" in kind:
                        st, srel = kind.split("#")
                        user = f"{st}:{rng.choice(IDS)}#{srel}"
                    elif kind == "user":
                        user = rng.choice(USERS)
                    else:
                        user = f"{kind}:{rng.choice(IDS)}"
                    obj = f"{tname}:{oid}"
                    out[(obj, rname, user)] = TupleKey(obj, rname, user, cond)
    return list(out.values())


async def _services(
    ds: Datastore, dsl: str, tuples: list[TupleKey], object_prefetch: int = 100, links: bool = True
) -> tuple[FGAService, FGAService, str]:
    """Two services on one store: with plans (the default) and without; ``links``: whether the plans take
    links and set grants from the link index (engine/links.py) or read objects from storage."""
    config = EngineConfig(check_cache_ttl=0, object_prefetch=object_prefetch, check_links=links)
    with_plans = FGAService(ds, config=config)
    without = FGAService(ds, config=EngineConfig(check_cache_ttl=0, object_prefetch=object_prefetch))
    without.checker = LocalChecker(plans=False)
    without.cache = CachedChecker(without.checker, ttl=0)
    without.resolver = without.cache
    store_id = (await with_plans.create_store("plans")).id
    await with_plans.write_authorization_model(store_id, transform_dsl_to_json(dsl))
    ts = await with_plans.typesystem(store_id)
    valid = []
    for k in tuples:
        try:
            ts.validate_tuple(k)
        except FGAError:
            continue  # e.g. a set in itself, which cannot be written
        valid.append(k)
    tuples = valid
    for i in range(0, len(tuples), 100):
        await with_plans.write(store_id, tuples[i : i + 100])
    return with_plans, without, store_id


async def _answer(svc: FGAService, store_id: str, key: TupleKey, **kw: Any) -> Any:
    """Check's answer or its error code. HIGHER_CONSISTENCY unless told otherwise: a single uncached Check
    resolves shallow sets forwards (the bench's path), a cacheable one from the user's closures."""
    kw.setdefault("consistency", "HIGHER_CONSISTENCY")
    try:
        return (await svc.check(CheckRequest(store_id, key, **kw))).allowed
    except FGAError as exc:
        return ("error", exc.code)


def _counting(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the plans' verdicts (answered, handed back)."""
    counts = {"answered": 0, "handed back": 0}
    real = check_module.run

    async def counted(*args: Any, **kwargs: Any) -> bool | None:
        verdict = await real(*args, **kwargs)
        counts["answered" if verdict is not None else "handed back"] += 1
        return verdict

    monkeypatch.setattr(check_module, "run", counted)
    real_indexed = plan_module._Search.run_indexed

    async def indexed(self: Any, *args: Any) -> bool | None:
        counts["indexed"] = counts.get("indexed", 0) + 1
        return await real_indexed(self, *args)

    monkeypatch.setattr(plan_module._Search, "run_indexed", indexed)
    return counts


def _plain(counts: dict[str, int]) -> dict[str, int]:
    """The verdict counts without the index's."""
    return {k: v for k, v in counts.items() if k != "indexed"}


async def _agree(ds: Datastore, seed: int, object_prefetch: int = 100, links: bool = True) -> tuple[int, int]:
    """Every check of every relation of every object for every user, with and without plans; returns
    (checks, allowed ones)."""
    rng = random.Random(seed)
    for _ in range(20):
        dsl, refs = generated_model(rng)
        try:
            TypeSystem.from_json(transform_dsl_to_json(dsl))
        except (FGAError, ModelValidationError):
            continue  # not a valid model (OpenFGA's rules): draw another
        break
    else:
        pytest.skip("no valid model drawn")
    tuples = generated_tuples(rng, refs)
    with_plans, without, store_id = await _services(ds, dsl, tuples, object_prefetch, links)
    checks = allowed = 0
    for tname, rels in refs.items():
        for rname in [*rels, "member"] if tname == "team" else rels:
            for oid in IDS:
                for user in [*USERS, "team:0#member"]:
                    key = TupleKey(f"{tname}:{oid}", rname, user)
                    kw: dict[str, Any] = {"context": {"hour": 9}}
                    if checks % 2:
                        kw["consistency"] = "MINIMIZE_LATENCY"
                    got = await _answer(with_plans, store_id, key, **kw)
                    want = await _answer(without, store_id, key, **kw)
                    assert got == want, (dsl, key, got, want)
                    checks += 1
                    allowed += got is True
    return checks, allowed


@pytest.mark.parametrize("links", [True, False])
@pytest.mark.parametrize("seed", range(60))
async def test_plans_agree_with_the_rules_walk_in_memory(
    seed: int, links: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = _counting(monkeypatch)
    await _agree(MemoryDatastore(), seed, links=links)
    # Most generated relations are plain unions: the plans must have answered some checks themselves.
    if seed == 0:
        assert counts["answered"] > 0
        # From the link index exactly when it is on.
        assert (counts.get("indexed", 0) > 0) is links


@pytest.mark.parametrize("ranges", [False, True])
@pytest.mark.parametrize("seed", range(200, 230))
async def test_plans_agree_on_objects_too_big_to_prefetch(
    seed: int, ranges: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a prefetch of two tuples most objects are big: relations are read one by one, and the plan's
    reads of big relations are the ones answering: probes of the user's sets, or (``ranges``: from the
    first set on) the relation's usersets of the kinds by range."""
    if ranges:
        monkeypatch.setattr(plan_module, "_MAX_PROBED_SETS", 0)
    await _agree(MemoryDatastore(), seed, object_prefetch=2, links=False)


@pytest.mark.parametrize("seed", [4, 5])
async def test_plans_agree_on_objects_too_big_to_prefetch_in_sql(
    database: Database, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tessera.core.clock import Clock

    monkeypatch.setattr(plan_module, "_MAX_PROBED_SETS", seed - 4)
    ds = SQLDatastore(database, Clock())
    try:
        await _agree(ds, seed, object_prefetch=2, links=False)
    finally:
        await ds.aclose()


async def test_plans_answer_most_generated_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Over many generated stores the plans answer most checks themselves (some true, some false), so the
    agreement above is not the rules walk agreeing with itself."""
    counts = _counting(monkeypatch)
    checks = allowed = 0
    for seed in range(100, 130):
        c, a = await _agree(MemoryDatastore(), seed, links=seed % 2 == 0)
        checks, allowed = checks + c, allowed + a
    assert counts["answered"] > counts["handed back"], counts
    assert counts.get("indexed", 0) > 0
    assert 0 < allowed < checks


@pytest.mark.parametrize("links", [True, False])
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_plans_agree_with_the_rules_walk_in_sql(database: Database, seed: int, links: bool) -> None:
    from tessera.core.clock import Clock

    ds = SQLDatastore(database, Clock())
    try:
        await _agree(ds, seed, links=links)
    finally:
        await ds.aclose()


GITHUB = """model
  schema 1.1
type user
type team
  relations
    define member: [user, team#member]
type organization
  relations
    define owner: [user]
    define member: [user, team#member] or owner
    define repo_reader: [user, organization#member]
type repo
  relations
    define owner: [organization]
    define admin: [user, team#member]
    define writer: [user, team#member] or admin
    define reader: [user, team#member] or writer or repo_reader from owner
type document
  relations
    define repo: [repo]
    define viewer: [user, team#member] or reader from repo
"""


@pytest.mark.parametrize("links", [True, False])
async def test_a_plan_answers_through_teams_orgs_and_big_relations(
    links: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bench's shape: a document's viewers through its repo, the repo's organisation and its members
    (a relation too big to prefetch, read by probes), and nested teams; true and false both from the plan."""
    counts = _counting(monkeypatch)
    members = [tk("organization:o", "member", f"user:m{i}") for i in range(150)]
    tuples = [
        *members,
        tk("team:child", "member", "user:t"),
        tk("team:parent", "member", "team:child#member"),
        tk("organization:o", "member", "team:parent#member"),
        tk("organization:o", "repo_reader", "organization:o#member"),
        tk("repo:r", "owner", "organization:o"),
        tk("document:d", "repo", "repo:r"),
        tk("repo:r", "admin", "user:a"),
        tk("organization:o", "owner", "user:boss"),
    ]
    with_plans, without, store_id = await _services(MemoryDatastore(), GITHUB, tuples, links=links)
    cases = {"user:t": True, "user:m7": True, "user:a": True, "user:boss": True, "user:x": False}
    for user, expected in cases.items():
        key = TupleKey("document:d", "viewer", user)
        assert await _answer(with_plans, store_id, key) is expected
        assert await _answer(without, store_id, key) is expected
    assert _plain(counts) == {"answered": len(cases), "handed back": 0}
    assert counts.get("indexed", 0) == (len(cases) if links else 0)


async def test_depth_limit_is_the_rules_walks() -> None:
    """A chain of 30 computed usersets is deeper than Check's limit of 25: no plan, and the request fails
    with resolution_too_complex as before; 20 are within it and the plan answers."""
    chain = "\n".join(f"    define r{i}: r{i - 1}" for i in range(1, 31))
    dsl = f"model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define r0: [user]\n{chain}\n"
    with_plans, without, store_id = await _services(MemoryDatastore(), dsl, [tk("doc:1", "r0", "user:a")])
    ts = await with_plans.typesystem(store_id)
    deep = compiled(ts, "doc", "r30", User("user", "a"))
    assert deep is not None and deep.depth == 30
    shallow = compiled(ts, "doc", "r20", User("user", "a"))
    assert shallow is not None and shallow.depth == 20
    too_deep = ("error", "authorization_model_resolution_too_complex")
    for rel, expected in (("r30", too_deep), ("r20", True)):
        for svc in (with_plans, without):
            assert await _answer(svc, store_id, TupleKey("doc:1", rel, "user:a")) == expected


async def test_a_team_nested_deeper_than_the_budget_is_handed_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """A user 30 teams down: the closure knows the membership, but the rules walk would resolve that set
    forwards (past its depth budget) and fail; the plan hands it back and the answers are the same."""
    dsl = "model\n  schema 1.1\ntype user\ntype team\n  relations\n    define member: [user, team#member]\n"
    dsl += "type doc\n  relations\n    define viewer: [user, team#member]\n"
    tuples = [tk("team:0", "member", "user:a"), tk("doc:1", "viewer", "team:30#member")]
    tuples += [tk(f"team:{i + 1}", "member", f"team:{i}#member") for i in range(30)]
    tuples += [tk("doc:2", "viewer", "team:3#member")]
    counts = _counting(monkeypatch)
    with_plans, without, store_id = await _services(MemoryDatastore(), dsl, tuples)
    for obj in ("doc:1", "doc:2"):
        key = TupleKey(obj, "viewer", "user:a")
        assert await _answer(with_plans, store_id, key) == await _answer(without, store_id, key)
    assert _plain(counts) == {"answered": 1, "handed back": 1}


async def test_conditions_and_exclusions_have_no_plan() -> None:
    dsl = """model
  schema 1.1
type user
type doc
  relations
    define blocked: [user]
    define viewer: [user] but not blocked
    define editor: [user with hours]
    define owner: [user]
condition hours(hour: int) {
  hour < 12
}
"""
    ts = TypeSystem.from_json(transform_dsl_to_json(dsl))
    user = User("user", "a")
    assert compiled(ts, "doc", "viewer", user) is None
    assert compiled(ts, "doc", "editor", user) is None
    assert compiled(ts, "doc", "owner", user) is not None
    assert compiled(ts, "doc", "owner", User("user", "*")) is None
    assert compiled(ts, "doc", "owner", User("doc", "x", "owner")) is None


async def test_contextual_tuples_with_a_condition_are_handed_back() -> None:
    dsl = """model
  schema 1.1
type user
type doc
  relations
    define viewer: [user, user with hours]
condition hours(hour: int) {
  hour < 12
}
"""
    with_plans, without, store_id = await _services(MemoryDatastore(), dsl, [])
    ctx = [TupleKey("doc:1", "viewer", "user:a", "hours")]
    for hour, expected in ((9, True), (15, False)):
        for svc in (with_plans, without):
            got = await _answer(
                svc,
                store_id,
                TupleKey("doc:1", "viewer", "user:a"),
                contextual_tuples=ctx,
                context={"hour": hour},
            )
            assert got is expected


async def _relation_rows_cases(ds: Datastore) -> list[Any]:
    svc = FGAService(ds)
    store_id = (await svc.create_store("rows")).id
    await svc.write_authorization_model(store_id, transform_dsl_to_json(GITHUB))
    tuples = [tk("organization:o", "member", f"user:m{i}") for i in range(5)]
    tuples += [tk("organization:o", "member", f"team:t{i}#member") for i in range(5)]
    tuples += [tk("organization:p", "member", "team:other#member"), tk("team:t0", "member", "user:m0")]
    await svc.write(store_id, tuples)
    read = ds.read_relation_rows  # type: ignore[attr-defined]
    out = []
    for users, kinds, limit in (
        (["user:m1", "user:zz"], [("team", "member")], 10),
        (["user:m1", "team:t2#member"], [("team", "member")], 5),
        (["user:m1"], [("team", "member")], 4),
        ([], [("team", "member")], 5),
        (["user:m3"], [], 0),
    ):
        rows = await read(store_id, "organization", "o", "member", users, kinds, limit)
        out.append(None if rows is None else sorted(str(k) for k in rows))
    return out


async def test_read_relation_rows_is_the_same_on_every_datastore(database: Database) -> None:
    from tessera.core.clock import Clock

    sql = SQLDatastore(database, Clock())
    try:
        got = await _relation_rows_cases(sql)
    finally:
        await sql.aclose()
    assert got == await _relation_rows_cases(MemoryDatastore())
    teams = [f"organization:o#member@team:t{i}#member" for i in range(5)]
    assert got == [
        sorted(["organization:o#member@user:m1", *teams]),
        sorted(["organization:o#member@user:m1", *teams]),
        None,
        sorted(teams),
        ["organization:o#member@user:m3"],
    ]


@pytest.mark.parametrize("links", [True, False])
@pytest.mark.parametrize("org_teams", [3, 70])
async def test_a_user_in_many_teams_against_a_big_relation(
    org_teams: int, links: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user in six nested teams and organisations of 150 members (too big to prefetch): an
    organisation's teams are read by range when few (3, and organisation p's one) and the user's probed one
    by one when the organisation has more than the bound (70); both from the plan."""
    await _many_teams(MemoryDatastore(), org_teams, monkeypatch, links)


async def test_a_user_in_many_teams_against_a_big_relation_in_sql(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tessera.core.clock import Clock

    ds = SQLDatastore(database, Clock())
    try:
        for links in (True, False):
            await _many_teams(ds, 70, monkeypatch, links)
    finally:
        await ds.aclose()


async def _many_teams(
    ds: Datastore, org_teams: int, monkeypatch: pytest.MonkeyPatch, links: bool = False
) -> None:
    counts = _counting(monkeypatch)
    tuples = [tk("organization:o", "member", f"user:m{i}") for i in range(150)]
    tuples += [tk("team:0", "member", "user:t")]
    tuples += [tk(f"team:{i + 1}", "member", f"team:{i}#member") for i in range(5)]
    tuples += [tk("organization:o", "member", f"team:x{i}#member") for i in range(org_teams)]
    tuples += [
        tk("organization:o", "repo_reader", "organization:o#member"),
        tk("repo:r", "owner", "organization:o"),
    ]
    tuples += [
        tk("organization:p", "repo_reader", "organization:p#member"),
        tk("repo:q", "owner", "organization:p"),
    ]
    tuples += [tk("organization:p", "member", f"user:m{i}") for i in range(150)]
    tuples += [tk("organization:p", "member", "team:4#member")]
    with_plans, without, store_id = await _services(ds, GITHUB, tuples, links=links)
    for repo, expected in (("repo:r", False), ("repo:q", True)):
        key = TupleKey(repo, "reader", "user:t")
        assert await _answer(with_plans, store_id, key) is expected
        assert await _answer(without, store_id, key) is expected
    # A contextual tuple on the big relation counts as a stored one would.
    ctx = [tk("organization:o", "member", "team:3#member")]
    key = TupleKey("repo:r", "reader", "user:t")
    assert await _answer(with_plans, store_id, key, contextual_tuples=ctx) is True
    assert await _answer(without, store_id, key, contextual_tuples=ctx) is True
    assert _plain(counts) == {"answered": 3, "handed back": 0}
