"""OpenFGA's own conformance cases (consolidated_1_1_tests.yaml, the engine's harness in
tests/fga/engine/conformance.py) with the engine on the SQL datastore instead of the in-memory one: every
read the resolvers make goes through SQLite's hot path (or PostgreSQL's SQLAlchemy path), and every stage's
model and tuples through real transactions. Same answers as OpenFGA is the bar."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tessera.core.clock import Clock
from tessera.fga.sql.store import SQLDatastore
from tessera.storage.database import Database
from tessera.storage.migrate import upgrade
from tests.conftest import _create_pg_database, _drop_pg_database, require_postgres
from tests.fga.engine import conformance
from tests.fga.engine.test_consolidated import CASES, _params

try:
    from tessera.fga.language import transform_dsl_to_json
except ImportError:  # pragma: no cover
    transform_dsl_to_json = None


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One migrated database for the whole module (each case makes its own store in it)."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{Path(tmp_path_factory.mktemp('conformance')) / 'fga.db'}"
    else:
        require_postgres()
        url = asyncio.run(_create_pg_database())

    async def migrate() -> None:
        db = Database(url)
        try:
            await upgrade(db)
        finally:
            await db.dispose()

    asyncio.run(migrate())
    try:
        yield url
    finally:
        if request.param == "postgresql":
            asyncio.run(_drop_pg_database(url))


@pytest.mark.skipif(not CASES, reason="OpenFGA reference cases not found")
@pytest.mark.skipif(transform_dsl_to_json is None, reason="tessera.fga.language (the DSL parser) is missing")
@pytest.mark.parametrize(("case", "kind", "contextual"), _params())
async def test_openfga_conformance_on_sql(
    case: dict[str, Any], kind: str, contextual: bool, backend_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(backend_url)
    datastores: list[SQLDatastore] = []

    def sql_datastore() -> SQLDatastore:
        ds = SQLDatastore(db, Clock())
        datastores.append(ds)
        return ds

    # The harness builds its service on MemoryDatastore(); hand it the SQL one instead.
    monkeypatch.setattr(conformance, "MemoryDatastore", sql_datastore)
    try:
        outcome = await conformance.run_case(
            case, kind, contextual=contextual, dsl_to_json=transform_dsl_to_json
        )
    finally:
        for ds in datastores:
            await ds.aclose()
        await db.dispose()
    assert datastores, "the harness did not use the SQL datastore"
    assert not outcome.failures, "\n".join(outcome.failures)
    assert outcome.passed > 0
