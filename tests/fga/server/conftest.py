"""Fixtures for the ``/fga`` API: an app on a migrated database (SQLite and PostgreSQL), driven in process
with httpx, with authentication on or off, and helpers that mint Tessera access tokens."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tessera.core.clock import FrozenClock
from tessera.services import Services
from tessera.settings import Settings
from tessera.storage.migrate import upgrade
from tessera.web.app import create_app

ISSUER = "http://127.0.0.1:8999"

# A small model with every rewrite: direct, wildcard, userset, computed, tuple-to-userset, intersection,
# exclusion and a condition.
MODEL_DSL = """\
model
  schema 1.1

type user

type group
  relations
    define member: [user, group#member]

type folder
  relations
    define owner: [user]
    define viewer: [user, user:*, group#member] or owner

type document
  relations
    define parent: [folder]
    define owner: [user]
    define editor: [user, group#member] or owner
    define blocked: [user]
    define viewer: ([user, user with in_office] or editor or viewer from parent) but not blocked
    define approver: [user] and editor

condition in_office(ip: ipaddress, office: string) {
  ip.in_cidr(office)
}
"""


def settings_for(tmp_path: Path, database_url: str, *, auth: bool) -> Settings:
    # PostgreSQL deployments must bring a master key (only the embedded setup makes one on the fly).
    master_key = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    return Settings(
        master_key=master_key,
        issuer=ISSUER,
        database_url=database_url,
        data_dir=tmp_path,
        fga_auth=auth,
        host="127.0.0.1",
    )


@pytest.fixture
async def fga_services(tmp_path: Path, database_url: str) -> AsyncIterator[Services]:
    services = Services(
        settings_for(tmp_path, database_url, auth=False), clock=FrozenClock(at=1_800_000_000.0)
    )
    await upgrade(services.db)
    try:
        yield services
    finally:
        await services.aclose()


@pytest.fixture
async def api(fga_services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """The /fga API with authentication off (the loopback-only opt-out)."""
    app = create_app(services=fga_services)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://127.0.0.1/fga"
    ) as client:
        yield client


@asynccontextmanager
async def secured_api(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    """The /fga API with authentication on, on ``database_url``, and the services to mint tokens with."""
    services = Services(settings_for(tmp_path, database_url, auth=True))
    await upgrade(services.db)
    # The client the tests' tokens name: tokens of clients that do not exist are refused.
    from tessera.admin import operations

    await operations.create_client(
        services,
        source="test",
        client_id="client-1",
        client_name="fga test client",
        grant_types=["client_credentials"],
    )
    app = create_app(services=services)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://127.0.0.1/fga"
        ) as client:
            yield client, services
    finally:
        await services.aclose()


@pytest.fixture
async def secured(tmp_path: Path, sqlite_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    """The /fga API with authentication on (SQLite)."""
    async with secured_api(tmp_path, sqlite_url) as api:
        yield api


def model_json() -> dict[str, Any]:
    from tessera.fga.language import transform_dsl_to_json

    return transform_dsl_to_json(MODEL_DSL)


async def new_store(api: httpx.AsyncClient, name: str = "test") -> str:
    r = await api.post("/stores", json={"name": name})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def new_store_with_model(api: httpx.AsyncClient) -> tuple[str, str]:
    store_id = await new_store(api)
    r = await api.post(f"/stores/{store_id}/authorization-models", json=model_json())
    assert r.status_code == 201, r.text
    return store_id, str(r.json()["authorization_model_id"])


def tk(user: str, relation: str, obj: str, **extra: Any) -> dict[str, Any]:
    return {"user": user, "relation": relation, "object": obj, **extra}
