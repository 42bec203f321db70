"""Check's compiled plans from the link index (engine/plan.py's ``run_indexed``) on real SQLite and
PostgreSQL: a HIGHER_CONSISTENCY Check must see every write committed before it, whichever process made it
(links, grants to sets and wildcards, team nesting, the user's own tuples, deletes), and answer as the rules
walk does (LocalChecker without plans, reading storage)."""

from __future__ import annotations

from typing import Any

import pytest

import tessera.fga.engine.plan as plan_module
from tessera.core.clock import Clock
from tessera.fga.engine.check import CachedChecker, LocalChecker
from tessera.fga.engine.service import CheckRequest, EngineConfig, FGAService
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
type organization
  relations
    define owner: [user]
    define member: [user, team#member] or owner
    define repo_reader: [user, organization#member]
type repo
  relations
    define owner: [organization]
    define admin: [user, team#member]
    define reader: [user, user:*, team#member] or admin or repo_reader from owner
type document
  relations
    define repo: [repo]
    define viewer: [user, team#member] or reader from repo
"""

USERS = ["user:ann", "user:bob", "user:cat", "user:dan"]
DOCS = ["document:d0", "document:d1", "document:d2"]


def _rules_walk(ds: SQLDatastore) -> FGAService:
    svc = FGAService(ds, config=EngineConfig(check_cache_ttl=0))
    svc.checker = LocalChecker(plans=False)
    svc.cache = CachedChecker(svc.checker, ttl=0)
    svc.resolver = svc.cache
    return svc


async def _answers(svc: FGAService, sid: str) -> dict[tuple[str, str], bool]:
    out = {}
    for user in USERS:
        for doc in DOCS:
            req = CheckRequest(sid, TupleKey(doc, "viewer", user), consistency="HIGHER_CONSISTENCY")
            out[(user, doc)] = (await svc.check(req)).allowed
    return out


def _allowed(answers: dict[tuple[str, str], bool]) -> set[tuple[str, str]]:
    return {k for k, v in answers.items() if v}


async def test_checks_from_the_index_follow_writes_of_another_process(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    indexed = [0]
    real = plan_module._Search.run_indexed

    async def counted(self: Any, *args: Any) -> bool | None:
        indexed[0] += 1
        return await real(self, *args)

    monkeypatch.setattr(plan_module._Search, "run_indexed", counted)
    ds = SQLDatastore(database, Clock())
    svc = FGAService(ds, config=EngineConfig(check_cache_ttl=0, check_links=True))
    # Another process on the same database: its own datastore (own connections) and services.
    other_ds = SQLDatastore(database, Clock())
    other = FGAService(other_ds)
    walk = _rules_walk(other_ds)
    try:
        sid = (await svc.create_store("check-links")).id
        await svc.write_authorization_model(sid, transform_dsl_to_json(MODEL))
        await svc.write(
            sid,
            [
                tk("document:d0", "repo", "repo:r0"),
                tk("document:d1", "repo", "repo:r1"),
                tk("repo:r0", "owner", "organization:o"),
                tk("organization:o", "repo_reader", "organization:o#member"),
                tk("organization:o", "member", "team:t1#member"),
                tk("team:t1", "member", "team:t2#member"),
                tk("team:t2", "member", "user:ann"),
                tk("repo:r1", "admin", "user:bob"),
                tk("document:d2", "viewer", "user:cat"),
            ],
        )
        got = await _answers(svc, sid)
        assert got == await _answers(walk, sid)
        assert _allowed(got) == {
            ("user:ann", "document:d0"),  # through the org's teams, two nesting levels
            ("user:bob", "document:d1"),  # the user's own tuple on the repo
            ("user:cat", "document:d2"),  # the user's own tuple on the document
        }
        assert indexed[0] == len(got)
        idx = svc.links.peek(sid)
        assert idx is not None

        # Writes through the other process: a new link, a wildcard grant, a nesting change (the nesting
        # index must not be kept from before it), an own tuple on the organisation's big side.
        await other.write(
            sid,
            [
                tk("document:d2", "repo", "repo:r1"),
                tk("repo:r1", "reader", "user:*"),
                tk("team:t2", "member", "team:t3#member"),
                tk("team:t3", "member", "user:dan"),
                tk("organization:o", "owner", "user:cat"),
            ],
        )
        got = await _answers(svc, sid)
        assert got == await _answers(walk, sid)
        assert all(got[(u, d)] for u in USERS for d in ("document:d1", "document:d2"))
        assert got[("user:dan", "document:d0")] and got[("user:cat", "document:d0")]

        # Deletes through the other process: the wildcard, a link, a nesting step, the owner.
        await other.write(
            sid,
            deletes=[
                tk("repo:r1", "reader", "user:*"),
                tk("document:d0", "repo", "repo:r0"),
                tk("team:t1", "member", "team:t2#member"),
                tk("organization:o", "owner", "user:cat"),
            ],
        )
        got = await _answers(svc, sid)
        assert got == await _answers(walk, sid)
        assert _allowed(got) == {
            ("user:bob", "document:d1"),
            ("user:bob", "document:d2"),
            ("user:cat", "document:d2"),
        }
        # Then a team of the organisation again, and a repo grant to a team: both through sets.
        await other.write(
            sid, [tk("document:d0", "repo", "repo:r0"), tk("team:t1", "member", "team:t3#member")]
        )
        got = await _answers(svc, sid)
        assert got == await _answers(walk, sid)
        assert got[("user:dan", "document:d0")] and not got[("user:ann", "document:d0")]
        assert idx is svc.links.peek(sid)  # caught up, never rebuilt
        assert indexed[0] == 4 * len(got)
    finally:
        await other_ds.aclose()
        await ds.aclose()


async def test_contextual_tuples_and_a_disabled_index_read_storage(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    indexed = [0]
    real = plan_module._Search.run_indexed

    async def counted(self: Any, *args: Any) -> bool | None:
        indexed[0] += 1
        return await real(self, *args)

    monkeypatch.setattr(plan_module._Search, "run_indexed", counted)
    ds = SQLDatastore(database, Clock())
    try:
        svc = FGAService(ds, config=EngineConfig(check_cache_ttl=0, check_links=True))
        sid = (await svc.create_store("check-links")).id
        await svc.write_authorization_model(sid, transform_dsl_to_json(MODEL))
        await svc.write(sid, [tk("document:d0", "repo", "repo:r0")])
        key = TupleKey("document:d0", "viewer", "user:ann")
        ctx = [tk("repo:r0", "admin", "user:ann")]
        req = CheckRequest(sid, key, contextual_tuples=ctx, consistency="HIGHER_CONSISTENCY")
        assert (await svc.check(req)).allowed is True
        assert indexed[0] == 0 and svc.links.peek(sid) is None
        off = FGAService(ds, config=EngineConfig(check_cache_ttl=0))  # the default: off
        assert (await off.check(CheckRequest(sid, key, consistency="HIGHER_CONSISTENCY"))).allowed is False
        assert indexed[0] == 0 and off.links.peek(sid) is None
    finally:
        await ds.aclose()
