"""An app over a real SQLite file (or PostgreSQL) with a frozen clock, driven in process through httpx."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tessera.core.clock import FrozenClock
from tessera.services import Services
from tessera.settings import Settings
from tessera.storage.migrate import upgrade
from tessera.web.app import create_app

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "the page has no csrf_token field"
    return match.group(1)


@pytest.fixture
async def services(tmp_path: Path, clock: FrozenClock) -> AsyncIterator[Services]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'tessera.db'}",
        data_dir=tmp_path,
        issuer="http://testserver",
        login_max_failures=3,
        login_failure_window=900,
        login_max_attempts_per_ip=8,
        login_ip_window=300,
    )
    services = Services(settings, clock=clock)
    await upgrade(services.db)
    try:
        yield services
    finally:
        await services.aclose()


def client_for(
    services: Services, ip: str = "198.51.100.20", base_url: str = "http://testserver"
) -> httpx.AsyncClient:
    app = create_app(services=services)
    transport = httpx.ASGITransport(app=app, client=(ip, 50000))
    return httpx.AsyncClient(transport=transport, base_url=base_url, follow_redirects=False)


@pytest.fixture
async def http(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(services) as client:
        yield client
