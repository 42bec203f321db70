"""Shared fixtures: real SQLite and PostgreSQL databases, Redis, and a clock.

``database`` is parametrised over both backends, so any test that takes it runs on SQLite and on PostgreSQL.
PostgreSQL and Redis tests are skipped with a reason when the service is not reachable, except under CI
(``CI=true``), where a missing service is an error.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tessera.core.clock import FrozenClock
from tessera.storage.database import Database
from tessera.storage.migrate import upgrade

POSTGRES_ADMIN_URL = os.environ.get(
    "TESSERA_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("TESSERA_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# The team's shared folder sits beside the checkout (CI lays it there too): OpenFGA's reference cases.
SHARED = Path(os.environ.get("TESSERA_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))


def pytest_sessionstart(session: pytest.Session) -> None:
    # Tests that read shared/ skip with a reason when it is missing; CI must never skip them.
    if IN_CI and not (SHARED / "reference" / "openfga").is_dir():
        raise pytest.UsageError(f"CI needs the shared folder at {SHARED} (OpenFGA reference cases)")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _require(service: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{service} is not reachable at {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message}; CI must run this test (start the service in .ci/run)")
    pytest.skip(f"{message}; start it to run this test")


def require_postgres() -> None:
    _require("PostgreSQL", "127.0.0.1", 5432)


def require_redis() -> None:
    _require("Redis", "127.0.0.1", 6379)


async def _create_pg_database() -> str:
    import asyncpg

    name = f"tessera_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL.replace("postgresql+asyncpg", "postgresql"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


async def _drop_pg_database(url: str) -> None:
    import asyncpg

    name = url.rpartition("/")[2]
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL.replace("postgresql+asyncpg", "postgresql"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'tessera.db'}"


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    require_postgres()
    url = await _create_pg_database()
    try:
        yield url
    finally:
        await _drop_pg_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database URL, once for SQLite and once for PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'tessera.db'}"
        return
    require_postgres()
    url = await _create_pg_database()
    try:
        yield url
    finally:
        await _drop_pg_database(url)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A migrated database on each backend: the fixture conformance suites take."""
    db = Database(database_url)
    await upgrade(db)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(at=1_800_000_000.0)


@pytest.fixture
def redis_url() -> Iterator[str]:
    require_redis()
    yield REDIS_URL


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(coro):  # type: ignore[no-untyped-def]
    """Run a coroutine from synchronous test code (for peers whose clients are blocking)."""
    return asyncio.run(coro)
